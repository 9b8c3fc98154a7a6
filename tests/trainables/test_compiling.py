"""runtime.compile: the compiled G and D steps give the eager steps' losses and weights (CPU, tiny models)."""

import pytest
import torch

from trainables.compiling import compiles_discriminator
from trainables.config import load_config
from trainables.distributed import DistInfo
from trainables.trainer import Trainer

TINY = {"data.patch_size": 16, "model.g_channels": 8, "model.g_blocks": 1, "model.d_channels": 4,
        "model.d_dense": 8, "schedule.batch_size": 4, "runtime.device": "cpu"}


def _steps(mode: str, family: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss sums after one pretraining and two GAN steps, and G's and D's weights after them."""
    cfg = load_config(overrides={**TINY, "runtime.compile": mode, "loss.family": family})
    trainer = Trainer(cfg, DistInfo(0, 1, 0), torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    hr = torch.rand(4, 3, 16, 16, generator=gen) * 2 - 1  # (B, 3, P, P) in [-1, 1]
    lr = torch.rand(4, 3, 8, 8, generator=gen)  # (B, 3, P/2, P/2) in [0, 1]
    torch.manual_seed(1)
    losses = [trainer.pretrain_step(lr, hr)] + [trainer.gan_step(lr, hr) for _ in range(2)]
    sums = torch.stack([v for step in losses for v in step.values()])
    flat = lambda m: torch.cat([p.detach().flatten() for p in m.parameters()])  # noqa: E731
    return sums, flat(trainer.generator), flat(trainer.discriminator)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_compiled_steps_match_the_eager_steps():
    torch._dynamo.reset()
    eager = _steps("none", "lsgan")
    compiled = _steps("default", "lsgan")
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_wgan_gp_keeps_the_discriminator_eager():
    cfg = load_config(overrides={**TINY, "runtime.compile": "default", "loss.family": "wgan_gp",
                                 "model.d_norm": "layer"})
    assert not compiles_discriminator(cfg)
    assert compiles_discriminator(load_config(overrides={**TINY, "runtime.compile": "default"}))
    assert not compiles_discriminator(load_config(overrides=TINY))

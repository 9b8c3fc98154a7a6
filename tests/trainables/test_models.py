"""Generator, discriminator, upsamplers and builders: shapes, ranges, init, parameter counts."""

import pytest
import torch
import torch.nn.functional as F

from trainables.config import TrialConfig, from_dict
from trainables.degrade import bicubic_up
from trainables.models import (
    UPSAMPLERS,
    Discriminator,
    Generator,
    build_discriminator,
    build_generator,
)


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("upsampler", sorted(UPSAMPLERS))
@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("global_skip", ["none", "bicubic"])
def test_generator_shape_and_range(upsampler, scale, global_skip):
    torch.manual_seed(0)
    g = Generator(scale, channels=8, blocks=2, upsampler=upsampler, global_skip=global_skip)
    with torch.no_grad():
        # push the output stage far from its init so the range limits are exercised
        g.tail.weight.normal_(0, 1.0)
    lr = torch.rand(2, 3, 8, 12)
    sr = g(lr)
    assert sr.shape == (2, 3, 8 * scale, 12 * scale)
    assert sr.min() >= -1 and sr.max() <= 1
    assert (sr.abs() > 0.999).any()  # the clamp / tanh was actually needed
    sr.mean().backward()
    assert g.head[0].weight.grad is not None


@pytest.mark.parametrize("upsampler", sorted(UPSAMPLERS))
def test_upsampler_doubles(upsampler):
    block = UPSAMPLERS[upsampler](4)
    assert block(torch.zeros(1, 4, 5, 7)).shape == (1, 4, 10, 14)


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_skip_starts_at_bicubic(scale):
    torch.manual_seed(0)
    g = Generator(scale, channels=8, blocks=2, upsampler="pixel_shuffle", global_skip="bicubic")
    lr = torch.rand(2, 3, 8, 8)
    bicubic = bicubic_up(lr, scale) * 2 - 1  # the baseline row's kernel (a = -0.5), not torch's default a = -0.75
    with torch.no_grad():
        sr = g(lr)
    torch.testing.assert_close(sr, bicubic)  # zero-initialised last conv: SR is the baseline row at step 0
    torch_default = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1) * 2 - 1
    assert (sr - torch_default).abs().max() > 1e-3  # the other kernel would differ


def test_extra_input_channels_skip_uses_first_three():
    torch.manual_seed(0)
    g = Generator(2, channels=8, blocks=1, upsampler="resize_conv", global_skip="bicubic", in_channels=15)
    lr = torch.rand(1, 15, 8, 8)
    with torch.no_grad():
        sr = g(lr)
    expected = bicubic_up(lr[:, :3], 2) * 2 - 1
    assert sr.shape == (1, 3, 16, 16)
    torch.testing.assert_close(sr, expected)


def test_generator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        Generator(3, 8, 1, "pixel_shuffle", "none")
    with pytest.raises(ValueError, match="upsampler"):
        Generator(2, 8, 1, "deconv", "none")
    with pytest.raises(ValueError, match="global_skip"):
        Generator(2, 8, 1, "pixel_shuffle", "nearest")
    with pytest.raises(ValueError, match="norm: got 'layer'"):
        Generator(2, 8, 1, "pixel_shuffle", "none", norm="layer")


def test_generator_without_batchnorm():
    """g_norm "none" drops every BN (blocks and body tail) and gives those convs biases: C params
    fewer per dropped BN (2C params each, C bias gained); train and eval mode compute the same."""
    c, blocks = 8, 2
    with_bn = Generator(2, c, blocks, "pixel_shuffle", "none")
    without = Generator(2, c, blocks, "pixel_shuffle", "none", norm="none")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in without.modules())
    dropped = 2 * blocks + 1
    assert count_parameters(with_bn) - count_parameters(without) == dropped * c  # 2C BN - C bias each
    torch.manual_seed(0)
    lr = torch.rand(3, 3, 12, 12)
    train_out = without.train()(lr)
    assert torch.equal(train_out, without.eval()(lr))
    cfg = TrialConfig()
    cfg.model.g_norm = "none"
    assert count_parameters(build_generator(cfg)) == count_parameters(build_generator(TrialConfig())) - 9 * 32


@pytest.mark.parametrize("patch", [64, 96, 128])
@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_discriminator_patch_sizes(patch, norm):
    torch.manual_seed(0)
    d = Discriminator(patch, channels=4, dense=8, norm=norm)
    scores = d(torch.rand(2, 3, patch, patch) * 2 - 1)
    assert scores.shape == (2,)


def test_discriminator_rejects_bad_sizes():
    with pytest.raises(ValueError, match="multiple of 16"):
        Discriminator(50, channels=4, dense=8)
    with pytest.raises(ValueError, match="norm"):
        Discriminator(64, channels=4, dense=8, norm="instance")
    d = Discriminator(64, channels=4, dense=8)
    with pytest.raises(ValueError, match="64x64"):
        d(torch.zeros(1, 3, 96, 96))


def test_parameter_counts_by_hand():
    c = 8
    # conv3x3 C->4C with bias, then a per-channel PReLU on the C shuffled channels
    assert count_parameters(UPSAMPLERS["pixel_shuffle"](c)) == 9 * c * 4 * c + 4 * c + c  # 2344
    # conv3x3 C->C with bias, per-channel PReLU
    assert count_parameters(UPSAMPLERS["resize_conv"](c)) == 9 * c * c + c + c  # 592
    # discriminator without BN: 8 biased convs 3->2, 2->2, 2->4, 4->4, 4->8, 8->8, 8->16, 16->16
    widths = [(3, 2), (2, 2), (2, 4), (4, 4), (4, 8), (8, 8), (8, 16), (16, 16)]
    convs = sum(9 * i * o + o for i, o in widths)
    assert convs == 4686
    # 16x16 patch -> (16, 1, 1) map -> Linear(16, 4) -> Linear(4, 1)
    assert count_parameters(Discriminator(16, channels=2, dense=4, norm="none")) == 4686 + (16 * 4 + 4) + (4 + 1)
    # BN variant: convs 2..8 lose their bias (2+4+4+8+8+16+16 = 58) and gain 2 BN params per channel (116)
    assert count_parameters(Discriminator(16, channels=2, dense=4, norm="batch")) == 4759 - 58 + 116


def test_builders_follow_config():
    cfg = from_dict({"scale": 4, "data": {"patch_size": 96}, "model": {"upsampler": "resize_conv"}})
    g, d = build_generator(cfg), build_discriminator(cfg)
    assert isinstance(g, Generator) and g.scale == 4 and g.global_skip == cfg.model.global_skip
    assert g(torch.rand(1, 3, 24, 24)).shape == (1, 3, 96, 96)
    assert d.patch_size == 96
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    # the loss family never changes D: only model.d_norm does
    lsgan_none = from_dict({"model": {"d_norm": "none"}})
    wgan_none = from_dict({"loss": {"family": "wgan_gp"}, "model": {"d_norm": "none"}})
    for c in (lsgan_none, wgan_none):
        assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)) for m in build_discriminator(c).modules())
    torch.manual_seed(0)
    a = build_discriminator(lsgan_none).state_dict()
    torch.manual_seed(0)
    b = build_discriminator(wgan_none).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    layer = build_discriminator(from_dict({"loss": {"family": "wgan_gp"}, "model": {"d_norm": "layer"}}))
    norms = [m for m in layer.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 7 and all(n.num_groups == 1 for n in norms)


def test_layer_norm_is_per_sample():
    # the WGAN-GP penalty needs D(x_i) to depend on x_i alone: true for "layer" and "none", not "batch"
    torch.manual_seed(0)
    x = torch.randn(4, 3, 16, 16)
    for norm, independent in (("layer", True), ("none", True), ("batch", False)):
        d = Discriminator(16, channels=2, dense=4, norm=norm).train()
        alone = d(x[:2])  # two samples: BatchNorm needs more than one value per channel
        together = d(x)[:2]
        assert torch.allclose(alone, together, atol=1e-5) == independent, norm


def test_default_config_builds():
    cfg = TrialConfig()
    g, d = build_generator(cfg), build_discriminator(cfg)
    lr = torch.rand(2, 3, cfg.data.patch_size // cfg.scale, cfg.data.patch_size // cfg.scale)
    assert d(g(lr)).shape == (2,)

"""Adversarial families against hand-computed values, the WGAN-GP penalty, and VGG54."""

import math

import pytest
import torch
from torch import nn

from trainables.errors import UserError
from trainables.losses import (
    ADVERSARIAL,
    VGG54,
    gradient_penalty,
    load_vgg54,
    pixel_mse,
    vgg19_weights_path,
)


def close(t: torch.Tensor, value: float) -> None:
    assert t.shape == ()
    assert math.isclose(t.item(), value, rel_tol=1e-6, abs_tol=1e-6), (t.item(), value)


def test_families_named():
    assert set(ADVERSARIAL) == {"bce", "lsgan", "wgan_gp"}
    assert all(fam.name == name for name, fam in ADVERSARIAL.items())


def test_lsgan_by_hand():
    fam = ADVERSARIAL["lsgan"]
    close(fam.d_loss(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])), 0.0)
    close(fam.g_loss(torch.tensor([0.0, 0.0])), 0.5)
    # real [0, 3] -> 1/2 * mean(1, 4) = 1.25; fake [1, -1] -> 1/2 * mean(1, 1) = 0.5
    close(fam.d_loss(torch.tensor([0.0, 3.0]), torch.tensor([1.0, -1.0])), 1.75)
    # fake [1, -1] -> 1/2 * mean(0, 4) = 1
    close(fam.g_loss(torch.tensor([1.0, -1.0])), 1.0)
    torch.testing.assert_close(fam.score(torch.tensor([0.3, -2.0])), torch.tensor([0.3, -2.0]))


def test_bce_by_hand():
    fam = ADVERSARIAL["bce"]
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([0.0, -1.0])
    # -log sigmoid(x) = log(1 + e^-x); -log(1 - sigmoid(x)) = log(1 + e^x)
    d_real = (math.log(2) + math.log1p(math.exp(-2))) / 2
    d_fake = (math.log(2) + math.log1p(math.exp(-1))) / 2
    close(fam.d_loss(real, fake), d_real + d_fake)
    close(fam.g_loss(fake), (math.log(2) + math.log1p(math.exp(1))) / 2)  # non-saturating
    torch.testing.assert_close(fam.score(torch.tensor([0.0])), torch.tensor([0.5]))


def test_wgan_by_hand():
    fam = ADVERSARIAL["wgan_gp"]
    close(fam.d_loss(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])), -0.5 - 2.0)
    close(fam.g_loss(torch.tensor([-1.0, 0.0])), 0.5)
    torch.testing.assert_close(fam.score(torch.tensor([4.0])), torch.tensor([4.0]))


class LinearCritic(nn.Module):
    """D(x) = <w, x> + b per sample: its input gradient is w everywhere. Records its input."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.zeros(()))
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x.detach().clone()
        return (x * self.w).flatten(1).sum(1) + self.b  # (B,)


def test_gradient_penalty_linear_critic():
    torch.manual_seed(0)
    w = torch.zeros(3, 4, 4)
    w[0, 0, 0], w[1, 2, 3] = 3.0, 4.0  # ||w|| = 5 -> penalty (5 - 1)^2 = 16 for every sample
    d = LinearCritic(w)
    real, fake = torch.rand(4, 3, 4, 4), torch.rand(4, 3, 4, 4) - 2  # disjoint ranges
    penalty = gradient_penalty(d, real, fake)
    close(penalty, 16.0)
    # create_graph: the penalty depends on w, and d(penalty)/dw = 2 (||w|| - 1) w / ||w||
    penalty.backward()
    torch.testing.assert_close(d.w.grad, 2 * 4 * w / 5)
    # the interpolates are strictly between fake and real, so differ from both
    x = d.seen
    assert x is not None and x.shape == real.shape
    assert not torch.allclose(x, real) and not torch.allclose(x, fake)
    assert (x < real).all() and (x > fake).all()


def test_gradient_penalty_reaches_discriminator_params():
    from trainables.models import Discriminator

    torch.manual_seed(0)
    d = Discriminator(16, channels=2, dense=4, norm="none")
    real = torch.rand(2, 3, 16, 16) * 2 - 1
    fake = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_(True)  # as if from G
    penalty = gradient_penalty(d, real, fake)
    assert penalty.item() > 0
    penalty.backward()
    assert all(p.grad is not None for p in d.parameters() if p.dim() > 1)
    assert fake.grad is None  # the penalty trains D only


def test_gradient_penalty_seeded():
    d = LinearCritic(torch.ones(1, 2, 2))
    real, fake = torch.ones(3, 1, 2, 2), torch.zeros(3, 1, 2, 2)
    d(real)
    torch.manual_seed(1)
    gradient_penalty(d, real, fake)
    first = d.seen
    torch.manual_seed(1)
    gradient_penalty(d, real, fake)
    torch.testing.assert_close(d.seen, first)


def test_pixel_mse():
    close(pixel_mse(torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)), 0.25)


def test_pixel_losses_reduce_to_hand_computed_values():
    from trainables.config import LossConfig
    from trainables.losses import pixel_charbonnier, pixel_l1, pixel_loss

    hr = torch.zeros(1, 1, 2, 2)
    sr = torch.tensor([[[[0.5, -0.5], [0.0, 1.0]]]])  # differences 0.5, -0.5, 0, 1
    close(pixel_l1(sr, hr), (0.5 + 0.5 + 0 + 1) / 4)
    close(pixel_mse(sr, hr), (0.25 + 0.25 + 0 + 1) / 4)
    eps = 0.1
    want = (2 * math.sqrt(0.25 + 0.01) + 0.1 + math.sqrt(1.01)) / 4
    close(pixel_charbonnier(sr, hr, eps), want)
    close(pixel_charbonnier(hr, hr, eps), eps)  # zero error costs eps, and its gradient is 0 there
    assert pixel_charbonnier(sr, hr, 1e-6).item() == pytest.approx(pixel_l1(sr, hr).item(), abs=1e-6)
    for name, fn in (("mse", pixel_mse), ("l1", pixel_l1)):
        close(pixel_loss(sr, hr, LossConfig(pixel=name)), fn(sr, hr).item())
    close(pixel_loss(sr, hr, LossConfig(pixel="charbonnier", charbonnier_eps=eps)), want)


def test_vgg54_random_init_runs():
    torch.manual_seed(0)
    vgg = load_vgg54(pretrained=False)
    vgg.train()  # stays in eval mode
    assert not vgg.training
    assert all(not p.requires_grad for p in vgg.parameters())
    hr = torch.rand(2, 3, 64, 64) * 2 - 1
    sr = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    assert vgg.feature_map(hr).shape == (2, 512, 4, 4)
    loss = vgg(sr, hr)
    assert loss.shape == () and loss.item() > 0
    loss.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    close(vgg(hr, hr), 0.0)


def test_vgg54_matches_torchvision_layout():
    from torchvision.models.vgg import cfgs, make_layers

    reference = make_layers(cfgs["E"])[:36]
    ours = VGG54().features
    assert [type(m) for m in ours] == [type(m) for m in reference]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


def test_vgg54_missing_weights_is_one_line_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError) as info:
        load_vgg54(pretrained=True)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in message
    assert "IMAGENET1K_V1" in message and "loss.vgg_weight=0" in message


def test_vgg54_loads_from_hub_cache(tmp_path, monkeypatch):
    # a stand-in for torchvision's checkpoint: same keys for the features, plus a classifier
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(1)
    source = VGG54().features.state_dict()
    state = {f"features.{k}": v for k, v in source.items()}
    state["features.36.weight"] = torch.zeros(1)  # beyond conv5_4: ignored
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = vgg19_weights_path()
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    torch.manual_seed(2)
    vgg = load_vgg54(pretrained=True)
    for key, value in vgg.features.state_dict().items():
        torch.testing.assert_close(value, source[key])

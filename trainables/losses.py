"""Adversarial loss families (values, not subclasses), the WGAN-GP penalty and content losses.

The trainer composes the generator loss itself:
    pixel_weight * pixel_loss(sr, hr, loss_cfg) + vgg_weight * vgg54(sr, hr) + beta * family.g_loss(D(sr))
and the discriminator loss as family.d_loss(D(hr), D(sr)) (+ gp_weight * gradient_penalty
for wgan_gp). Every D output here is a raw score of shape (B,), no sigmoid applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.config import LossConfig
from trainables.errors import UserError

# ----------------------------------------------------------------------------- adversarial


@dataclass(frozen=True)
class AdversarialLoss:
    """One GAN loss family: D's loss on (real, fake) scores, G's loss on fake scores, and
    `score`, which maps raw scores to the number reported as "mean D(real)" / "mean D(fake)"."""

    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    score: Callable[[Tensor], Tensor]


def _bce_d(real: Tensor, fake: Tensor) -> Tensor:
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def _bce_g(fake: Tensor) -> Tensor:
    # non-saturating: maximise log D(G(z)) rather than minimise log(1 - D(G(z)))
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def _lsgan_d(real: Tensor, fake: Tensor) -> Tensor:
    # the paper's form: 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2], on raw scores
    return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()


def _lsgan_g(fake: Tensor) -> Tensor:
    return 0.5 * ((fake - 1) ** 2).mean()


def _wgan_d(real: Tensor, fake: Tensor) -> Tensor:
    # the critic's loss without the penalty; the trainer adds gp_weight * gradient_penalty
    return fake.mean() - real.mean()


def _wgan_g(fake: Tensor) -> Tensor:
    return -fake.mean()


def _identity(scores: Tensor) -> Tensor:
    return scores


ADVERSARIAL = {
    "bce": AdversarialLoss("bce", _bce_d, _bce_g, torch.sigmoid),  # score: a probability
    "lsgan": AdversarialLoss("lsgan", _lsgan_d, _lsgan_g, _identity),
    "wgan_gp": AdversarialLoss("wgan_gp", _wgan_d, _wgan_g, _identity),
}


def gradient_penalty(discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP: mean over samples of (||grad_x D(x)||_2 - 1)^2 at random interpolates x.

    x = eps * real + (1 - eps) * fake with one eps ~ U(0, 1) per sample; the norm is over
    (C, H, W). The graph is kept (create_graph=True) so the penalty's backward reaches D's
    parameters. `real` and `fake` are detached: the penalty trains D only.
    """
    real, fake = real.detach(), fake.detach()
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x = (eps * real + (1 - eps) * fake).requires_grad_(True)  # (B, C, H, W)
    (grad,) = torch.autograd.grad(discriminator(x).sum(), x, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)  # (B,)
    return ((norms - 1) ** 2).mean()


# ----------------------------------------------------------------------------- content


def pixel_mse(sr: Tensor, hr: Tensor) -> Tensor:
    """Mean squared error over all pixels; sr and hr in [-1, 1]."""
    return F.mse_loss(sr, hr)


def pixel_l1(sr: Tensor, hr: Tensor) -> Tensor:
    """Mean absolute error over all pixels; sr and hr in [-1, 1]."""
    return F.l1_loss(sr, hr)


def pixel_charbonnier(sr: Tensor, hr: Tensor, eps: float) -> Tensor:
    """Mean of sqrt((sr - hr)^2 + eps^2): L1 away from 0, smooth (quadratic) within ~eps of it."""
    return torch.sqrt((sr - hr) ** 2 + eps * eps).mean()


def pixel_loss(sr: Tensor, hr: Tensor, cfg: LossConfig) -> Tensor:
    """The pixel term `loss.pixel` names (mse | l1 | charbonnier), a scalar; sr and hr (B, 3, H, W)."""
    if cfg.pixel == "mse":
        return pixel_mse(sr, hr)
    if cfg.pixel == "l1":
        return pixel_l1(sr, hr)
    if cfg.pixel == "charbonnier":
        return pixel_charbonnier(sr, hr, cfg.charbonnier_eps)
    raise ValueError(f"loss.pixel: unknown {cfg.pixel!r}")


# VGG-19 up to the ReLU after conv5_4: torchvision's vgg19().features[:36] (built from its layer
# config "E" without the classifier, whose 120M parameters the loss never uses); state-dict keys match
_VGG54_DEPTH = 36
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg19_features_to_conv54() -> nn.Sequential:
    from torchvision.models.vgg import cfgs, make_layers

    return make_layers(cfgs["E"])[:_VGG54_DEPTH]


class VGG54(nn.Module):
    """SRGAN's phi_5,4 content loss: MSE between VGG-19 conv5_4 features (after ReLU) of SR and HR.

    Frozen and always in eval mode. Inputs are images in [-1, 1], (B, 3, H, W); they are
    mapped to [0, 1] and then to ImageNet's normalisation inside. The loss is the plain
    MSE of the feature maps; SRGAN divided the features by 12.75, i.e. the loss by
    12.75^2 ~= 163: `loss.vgg_weight` ~= 0.006 reproduces that scale.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = _vgg19_features_to_conv54()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG54:
        # a frozen feature extractor: a trainer's model.train() must not change it
        return super().train(False)

    def feature_map(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 512, H/16, W/16)."""
        x = ((x + 1) / 2 - self.mean) / self.std
        return self.features(x)

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        with torch.no_grad():
            target = self.feature_map(hr)
        return F.mse_loss(self.feature_map(sr), target)


def vgg19_weights_path() -> Path:
    """Where torchvision caches VGG19_Weights.IMAGENET1K_V1: <torch hub dir>/checkpoints/<file>."""
    from torchvision.models import VGG19_Weights

    filename = Path(urlparse(VGG19_Weights.IMAGENET1K_V1.url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def load_vgg54(pretrained: bool = True) -> VGG54:
    """VGG54 with ImageNet weights read from the local torch hub cache only (never downloads).

    pretrained=False leaves the random init (for tests). A missing file is a UserError.
    """
    model = VGG54()
    if not pretrained:
        return model
    path = vgg19_weights_path()
    if not path.is_file():
        raise UserError(f"VGG-19 ImageNet weights not found at {path} (needed because loss.vgg_weight > 0): "
                        "on a machine with internet run "
                        "python -c \"import torchvision; torchvision.models.vgg19(weights='IMAGENET1K_V1')\" "
                        "to fill that cache (or point TORCH_HOME at a copy), or set loss.vgg_weight=0 to use pixel MSE")
    state = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "features."
    features = {key[len(prefix):]: value for key, value in state.items()
                if key.startswith(prefix) and int(key.split(".")[1]) < _VGG54_DEPTH}
    model.features.load_state_dict(features, strict=True)
    return model

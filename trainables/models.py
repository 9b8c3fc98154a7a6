"""The SRResNet-style generator, the SRGAN-style discriminator and their typed builders.

Image ranges (the paper's normalisation): the generator takes LR in [0, 1] and returns
SR in [-1, 1]; the discriminator takes HR or SR in [-1, 1] and returns raw scores (no
sigmoid: the adversarial loss family in `trainables.losses` decides what they mean).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from trainables.config import TrialConfig
from trainables.degrade import bicubic_up
from trainables.fourier import G_DOMAINS, DualDiscriminator, FourierDiscriminator, SpectralGenerator
from trainables.temporal import TemporalHead


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    """A 'same'-padded k x k convolution (odd k); stride 2 halves the side (rounding up)."""
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=bias)


# ----------------------------------------------------------------------------- generator


def pixel_shuffle_up(channels: int) -> nn.Module:
    """x2: conv3x3 to 4C, PixelShuffle(2), PReLU. Can show a gridding artifact early on."""
    # (B, C, h, w) -> (B, 4C, h, w) -> (B, C, 2h, 2w)
    return nn.Sequential(_conv(channels, 4 * channels, 3), nn.PixelShuffle(2), nn.PReLU(channels))


def resize_conv_up(channels: int) -> nn.Module:
    """x2: nearest-neighbour resize, conv3x3, PReLU (avoids checkerboard/grid artifacts)."""
    # (B, C, h, w) -> (B, C, 2h, 2w)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(channels, channels, 3), nn.PReLU(channels))


UPSAMPLERS = {"pixel_shuffle": pixel_shuffle_up, "resize_conv": resize_conv_up}  # config.Upsampler's names
GLOBAL_SKIPS = ("none", "bicubic")
G_NORMS = ("batch", "none")


def _conv_norm(channels: int, norm: str) -> list[nn.Module]:
    """conv3 at width C, then BatchNorm (`norm` "batch": no conv bias, the BN has its own shift) or nothing."""
    if norm == "batch":
        return [_conv(channels, channels, 3, bias=False), nn.BatchNorm2d(channels)]
    return [_conv(channels, channels, 3)]


class ResidualBlock(nn.Module):
    """conv3-BN-PReLU-conv3-BN plus identity, at constant width C (SRGAN); without the BNs with
    `norm` "none" (EDSR's finding: BatchNorm costs PSNR in super-resolution)."""

    def __init__(self, channels: int, norm: str = "batch") -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_norm(channels, norm), nn.PReLU(channels), *_conv_norm(channels, norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """SRResNet: LR (B, in_channels, h, w) in [0, 1] -> SR (B, 3, h*scale, w*scale) in [-1, 1].

    head conv9 + PReLU -> `blocks` residual blocks -> conv3 + BN + long skip from the
    head -> log2(scale) x2 upsampling blocks -> conv9 to RGB, then the output stage
    (`norm` "none": every BN dropped):

    - global_skip "none": SR = tanh(conv(...)), the paper's plain output.
    - global_skip "bicubic": SR = clamp(bicubic(LR[:, :3]) * 2 - 1 + conv(...), -1, 1),
      a global residual over the bicubic upsample (VDSR, BasicSR's MSRResNet). The
      bicubic is `degrade.bicubic_up` (cubic a = -0.5, clamped to [0, 1]), the kernel of
      the baseline row. The last conv starts at zero, so at step 0 SR equals that bicubic
      baseline
      and training only has to learn the missing detail: this is what lets short CPU
      runs beat bicubic.

    The input is mapped from [0, 1] to [-1, 1] inside (`lr * 2 - 1`) so callers pass
    LR as the data pipeline makes it. With `in_channels` > 3 (stacked video frames, 3
    channels each, frame-major), frame `skip_frame` is the one the bicubic skip
    upsamples (the centre frame for video). `head` replaces the conv9 + PReLU head: any
    module from (B, in_channels, h, w) in [-1, 1] to (B, channels, h, w), such as the
    video generator's 3D-conv front end (`trainables.temporal.TemporalHead`).
    """

    def __init__(self, scale: int, channels: int, blocks: int, upsampler: str, global_skip: str, in_channels: int = 3,
                 head: nn.Module | None = None, skip_frame: int = 0, norm: str = "batch") -> None:
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ValueError(f"scale: got {scale}, expected a power of 2 (2, 4, ...)")
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler: got {upsampler!r}, expected one of {', '.join(UPSAMPLERS)}")
        if global_skip not in GLOBAL_SKIPS:
            raise ValueError(f"global_skip: got {global_skip!r}, expected one of {', '.join(GLOBAL_SKIPS)}")
        if norm not in G_NORMS:
            raise ValueError(f"norm: got {norm!r}, expected one of {', '.join(G_NORMS)}")
        if in_channels < 3 * (skip_frame + 1):
            raise ValueError(f"in_channels: got {in_channels}, expected >= {3 * (skip_frame + 1)} "
                             f"(RGB of frames 0..{skip_frame})")
        self.scale = scale
        self.global_skip = global_skip
        self.skip_frame = skip_frame
        self.head = head if head is not None else nn.Sequential(_conv(in_channels, channels, 9), nn.PReLU(channels))
        self.body = nn.Sequential(*(ResidualBlock(channels, norm) for _ in range(blocks)))
        self.body_tail = nn.Sequential(*_conv_norm(channels, norm))
        self.upsample = nn.Sequential(*(UPSAMPLERS[upsampler](channels) for _ in range(int(math.log2(scale)))))
        self.tail = _conv(channels, 3, 9)
        if global_skip == "bicubic":
            # start as the identity on top of bicubic: the residual is learnt from zero
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        head = self.head(lr * 2 - 1)  # (B, C, h, w)
        feats = head + self.body_tail(self.body(head))  # long skip, (B, C, h, w)
        out = self.tail(self.upsample(feats))  # (B, 3, h*s, w*s)
        if self.global_skip == "none":
            return torch.tanh(out)
        c = 3 * self.skip_frame
        base = bicubic_up(lr[:, c : c + 3], self.scale)  # (B, 3, h*s, w*s) in [0, 1], the baseline row's kernel
        # the residual can push past [-1, 1]; the clamp keeps SR in HR's range
        return torch.clamp(base * 2 - 1 + out, -1.0, 1.0)


# ----------------------------------------------------------------------------- discriminator


NORMS = ("batch", "layer", "none")


def _lrelu() -> nn.Module:
    # not in-place: WGAN-GP differentiates through D twice (create_graph=True)
    return nn.LeakyReLU(0.2)


class Discriminator(nn.Module):
    """SRGAN discriminator: HR/SR patches (B, 3, P, P) in [-1, 1] -> raw scores (B,).

    conv3 (stride 1) + LeakyReLU(0.2), then seven conv3-[BN]-LeakyReLU blocks with
    strides 2, 1, 2, 1, 2, 1, 2 and widths C, 2C, 2C, 4C, 4C, 8C, 8C (8 convs in all, as
    in SRGAN), then dense layers on the flattened (8C, P/16, P/16) map:
    Linear(dense) -> LeakyReLU(0.2) -> Linear(1). The dense head fixes the input size,
    so `patch_size` must be the HR patch side and a multiple of 16.

    `norm` (config `model.d_norm`): "batch" is SRGAN's BatchNorm; "layer" is GroupNorm
    with one group (per sample over C, H, W, as the WGAN-GP paper recommends); "none"
    drops normalisation (the convs then get biases). The config refuses wgan_gp with
    "batch": its gradient penalty is per sample, and BN couples the samples of a batch.
    """

    def __init__(self, patch_size: int, channels: int, dense: int, norm: str = "batch") -> None:
        super().__init__()
        if patch_size <= 0 or patch_size % 16:
            raise ValueError(f"patch_size: got {patch_size}, the discriminator needs a multiple of 16 "
                             "(4 stride-2 convs)")
        if norm not in NORMS:
            raise ValueError(f"norm: got {norm!r}, expected one of {', '.join(NORMS)}")
        self.patch_size = patch_size
        layers: list[nn.Module] = [_conv(3, channels, 3), _lrelu()]
        c_in = channels
        # (width multiplier, stride) of blocks 2..8: width doubles every two convs
        for mult, stride in ((1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (8, 1), (8, 2)):
            c_out = mult * channels
            layers.append(_conv(c_in, c_out, 3, stride=stride, bias=norm == "none"))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            elif norm == "layer":
                layers.append(nn.GroupNorm(1, c_out))
            layers.append(_lrelu())
            c_in = c_out
        self.features = nn.Sequential(*layers)
        side = patch_size // 16
        # (B, 8C, P/16, P/16) -> (B, 8C * P/16 * P/16) -> (B, dense) -> (B, 1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side * side, dense), _lrelu(), nn.Linear(dense, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.patch_size, self.patch_size):
            raise ValueError(f"discriminator built for {self.patch_size}x{self.patch_size} patches, "
                             f"got {tuple(x.shape[-2:])}")
        return self.head(self.features(x)).squeeze(1)  # (B,)


# ----------------------------------------------------------------------------- builders


def build_generator(cfg: TrialConfig) -> nn.Module:
    """The single-image generator; with data.frames > 1, the same with the temporal front end as its head;
    with model.g_domain other than spatial, the Fourier-domain generator (trainables.fourier)."""
    m, frames = cfg.model, cfg.data.frames
    if m.g_domain != "spatial":  # its convs see 3k spectral channels; the wrapper swaps the tail
        net = Generator(cfg.scale, m.g_channels, m.g_blocks, m.upsampler, "none", 3 * G_DOMAINS[m.g_domain],
                        norm=m.g_norm)
        return SpectralGenerator(m.g_domain, net, cfg.scale, m.global_skip)
    return Generator(cfg.scale, m.g_channels, m.g_blocks, m.upsampler, m.global_skip,
                     in_channels=3 * frames,  # frames t-k..t+k stacked frame-major
                     head=TemporalHead(frames, m.g_channels, m.temporal_input) if frames > 1 else None,
                     skip_frame=frames // 2,  # the centre frame t
                     norm=m.g_norm)


def build_discriminator(cfg: TrialConfig) -> nn.Module:
    """The discriminator with `model.d_norm`, whatever the loss family (no hidden switch);
    model.d_domain fourier / dual wraps it (trainables.fourier)."""
    if cfg.model.d_domain != "spatial":
        plain = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, d_domain="spatial"))
        fourier = FourierDiscriminator(build_discriminator(plain))  # a plain D with a 9-channel first conv
        return fourier if cfg.model.d_domain == "fourier" else DualDiscriminator(build_discriminator(plain), fourier)
    m = cfg.model
    return Discriminator(cfg.data.patch_size, m.d_channels, m.d_dense, norm=m.d_norm)

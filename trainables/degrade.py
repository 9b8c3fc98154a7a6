"""Value conventions (uint8, [0,1], [-1,1]) and the LR degradation of the SR benchmark protocol."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# Conventions (README, vocabulary): images on disk and for metrics are uint8; LR enters the
# generator in [0, 1]; HR and the generator's output live in [-1, 1].


def to_float01(x_uint8: Tensor) -> Tensor:
    """(B, C, H, W) uint8 -> (B, C, H, W) float32 in [0, 1]."""
    if x_uint8.dtype != torch.uint8:
        raise TypeError(f"to_float01 expects uint8, got {x_uint8.dtype}")
    return x_uint8.to(torch.float32) / 255.0


def to_uint8(x01: Tensor) -> Tensor:
    """Float in [0, 1] -> uint8, rounded to the nearest level and clamped (out-of-range values saturate)."""
    return (x01 * 255.0).round().clamp(0, 255).to(torch.uint8)


def hr_to_model(x01: Tensor) -> Tensor:
    """[0, 1] -> [-1, 1], the range of HR targets and of the generator's tanh output."""
    return x01 * 2.0 - 1.0


def model_to_01(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], clamped; for outputs, sample grids and metrics (compare losses in model space)."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def modcrop(img: Tensor | np.ndarray, scale: int) -> Tensor | np.ndarray:
    """Crop height and width down to multiples of `scale` (bottom and right edges go).

    The layout follows the type: a Tensor is (..., H, W) (torch layout); a numpy array is
    (H, W) or (H, W, C) (PIL/skimage layout). Returns a view of the same type.
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if isinstance(img, Tensor):
        h, w = img.shape[-2:]
        return img[..., : h - h % scale, : w - w % scale]
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3):
            raise ValueError(f"numpy image must be (H, W) or (H, W, C), got shape {img.shape}")
        h, w = img.shape[:2]
        return img[: h - h % scale, : w - w % scale]
    raise TypeError(f"modcrop expects a Tensor or numpy array, got {type(img).__name__}")


def _check_batch(x: Tensor, name: str) -> None:
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"{name} must be a float (B, C, H, W) tensor, got {x.dtype} {tuple(x.shape)}")


def bicubic_down(hr01: Tensor, scale: int) -> Tensor:
    """The protocol's LR: antialiased bicubic downscale by `scale`, quantised to uint8 levels.

    (B, C, H, W) float in [0, 1], H and W multiples of `scale` (use `modcrop`)
    -> (B, C, H/scale, W/scale) float in [0, 1] holding exact multiples of 1/255.
    torch's antialiased bicubic (cubic a = -0.5, kernel widened by `scale`) matches
    MATLAB's imresize to 0.01 dB; the non-antialiased path aliases and must not make LR.
    Quantising here reproduces the protocol, which stores LR as uint8.
    """
    _check_batch(hr01, "hr01")
    h, w = hr01.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}x{w} is not a multiple of scale {scale}; modcrop it first")
    lr = F.interpolate(hr01, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)
    return (lr * 255.0).round().clamp(0, 255) / 255.0  # (B, C, H/s, W/s)


def bicubic_up(lr01: Tensor, scale: int) -> Tensor:
    """The "bicubic baseline" SR: (B, C, h, w) in [0, 1] -> (B, C, h*scale, w*scale) in [0, 1].

    antialias=True is not for anti-aliasing here (an upscale has nothing to filter): it
    selects torch's separable-resampling path, whose cubic uses a = -0.5 like MATLAB's
    imresize; the default path uses a = -0.75, which sharpens and overstates the
    published bicubic baselines by ~0.3 dB on Set5 x2.
    """
    _check_batch(lr01, "lr01")
    h, w = lr01.shape[-2:]
    sr = F.interpolate(lr01, size=(h * scale, w * scale), mode="bicubic", antialias=True, align_corners=False)
    return sr.clamp(0.0, 1.0)  # bicubic overshoots at edges


def nearest_up(lr01: Tensor, scale: int) -> Tensor:
    """Pixel replication: (B, C, h, w) -> (B, C, h*scale, w*scale); the crudest baseline."""
    _check_batch(lr01, "lr01")
    h, w = lr01.shape[-2:]
    return F.interpolate(lr01, size=(h * scale, w * scale), mode="nearest-exact")

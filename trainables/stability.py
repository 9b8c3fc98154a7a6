"""Stability of the adversarial phase from a validation-PSNR curve: spread and worst drop.

The trainer reports both every GAN epoch (`gan_psnr_spread`, `gan_psnr_drop`, and the level
they are measured from, `gan_psnr_start`). A GAN phase that holds its pretrained quality scores
0 on both; one that oscillates has a large spread; one that collapses has a large drop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def psnr_spread(curve: Sequence[float]) -> float:
    """Population standard deviation (dB) of the GAN epochs' val_psnr; 0 for one epoch, NaN for none."""
    values = [float(v) for v in curve]
    if not values:
        return math.nan
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def psnr_drop(start: float, curve: Sequence[float]) -> float:
    """Worst fall (dB, >= 0) of val_psnr below `start`, the level the GAN phase started from.

    0 when no GAN epoch scored below `start`; NaN for an empty curve or an unknown start.
    """
    if not curve or start is None or math.isnan(start):
        return math.nan
    return max(0.0, float(start) - min(float(v) for v in curve))


def gan_stability(start: float, curve: Sequence[float]) -> dict[str, float]:
    """The metrics a trial reports each GAN epoch, from the start level and the GAN epochs' val_psnr so far."""
    return {"gan_psnr_spread": psnr_spread(curve), "gan_psnr_drop": psnr_drop(start, curve),
            "gan_psnr_start": float(start)}


"""Synthetic photographs for the trainer tests: smooth but textured RGB images that a test writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_sinusoid_photos(folder: Path, count: int, side: int, waves: int, seed: int = 0,
                          max_freq: float = 10.0) -> Path:
    """`count` side x side images `img_<i>.png`, each a sum of `waves` coloured sinusoids of random
    frequency (0.5 to `max_freq` cycles per image) and phase, stretched to 0-255; one generator seeded
    with `seed` draws them all, so a test's images are the same on every run."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    for i in range(count):
        img = np.zeros((side, side, 3))
        for _ in range(waves):
            fx, fy, phase = rng.uniform(0.5, max_freq, 2).tolist() + [rng.uniform(0, 6.28)]
            img += rng.uniform(0.2, 1, 3) * np.sin(2 * np.pi * (fx * xx + fy * yy) + phase)[..., None]
        img = (img - img.min()) / (img.max() - img.min()) * 255
        Image.fromarray(img.astype(np.uint8)).save(folder / f"img_{i}.png")
    return folder

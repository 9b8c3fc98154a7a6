"""Synthetic photographs for the trainer tests (smooth but textured RGB images that a test writes),
and the tiny trainer config that trains on such a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from trainables.config import TrialConfig, load_config


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


def tiny_config(folder: Path, *, width: int, val_images: int, val_patches: int, pretrain_epochs: int,
                gan_epochs: int, patches_per_epoch: int, batch_size: int, **overrides: Any) -> TrialConfig:
    """A config small enough to train on a CPU in a test, on the images in `folder`: 32 px patches,
    one residual block, G and D `width` channels wide (D's dense layer 2 * `width`), one thread;
    `val_images` validation images (each in the grid) of `val_patches` patches; dotted `overrides` last."""
    return load_config(overrides={
        "data.source": "folder", "data.path": str(folder), "data.patch_size": 32,
        "data.val_images": val_images, "data.val_patches_per_image": val_patches, "data.grid_images": val_images,
        "model.g_channels": width, "model.g_blocks": 1, "model.d_channels": width, "model.d_dense": 2 * width,
        "schedule.pretrain_epochs": pretrain_epochs, "schedule.gan_epochs": gan_epochs,
        "schedule.patches_per_epoch": patches_per_epoch, "schedule.batch_size": batch_size,
        "runtime.threads": 1, **overrides})

"""Sample grids in the paper's Figure 6 layout: rows SR | bicubic | LR (nearest) | HR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

ROWS = ("SR", "bicubic", "LR", "HR")
LABEL_WIDTH = 56
GAP = 2


def make_grid(sr01: torch.Tensor, bicubic01: torch.Tensor, lr01: torch.Tensor, hr01: torch.Tensor,
              scale: int) -> Image.Image:
    """One column per validation image, one labelled row per rendering.

    sr01, bicubic01, hr01: (N, 3, H, W) in [0, 1]; lr01: (N, 3, H/scale, W/scale) in [0, 1],
    shown nearest-upscaled so its pixels are visible at the HR size.
    """
    lr_big = lr01.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    rows = [sr01, bicubic01, lr_big, hr01]
    n, _, h, w = hr01.shape
    width = LABEL_WIDTH + n * (w + GAP)
    height = len(rows) * (h + GAP)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for r, (label, row) in enumerate(zip(ROWS, rows)):
        y = r * (h + GAP)
        draw.text((4, y + h // 2 - 6), label, fill=(0, 0, 0), font=font)
        # (N, 3, H, W) float -> (N, H, W, 3) uint8
        tiles = (row.detach().float().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        for c in range(n):
            canvas.paste(Image.fromarray(np.ascontiguousarray(tiles[c])), (LABEL_WIDTH + c * (w + GAP), y))
    return canvas


def save_grid(image: Image.Image, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path

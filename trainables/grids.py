"""Sample grids in the paper's Figure 6 layout: rows SR | bicubic | LR (nearest) | HR.

With `spectra=True` two more rows show the log-amplitude spectra of SR and HR (the paper's
Figure 1 view: DC in the centre, high frequencies at the border), so a reader sees which
band a model fills in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from trainables.fourier import log_amplitude_spectrum

ROWS = ("SR", "bicubic", "LR", "HR")
SPECTRA_ROWS = ("SR |F|", "HR |F|")
LABEL_WIDTH = 56
GAP = 2


def spectra_rows(sr01: torch.Tensor, hr01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey (N, 3, H, W) images in [0, 1] of the log10 amplitude spectra of SR and HR (mean over colours).

    Both rows of a column share one scale, the HR spectrum's min..max, so a brighter SR
    border means more high-frequency energy than HR, a darker one less.
    """
    with torch.no_grad():
        sr_s = log_amplitude_spectrum(sr01.float() * 2 - 1).mean(1, keepdim=True)  # (N, 1, H, W)
        hr_s = log_amplitude_spectrum(hr01.float() * 2 - 1).mean(1, keepdim=True)
        lo = hr_s.amin(dim=(1, 2, 3), keepdim=True)
        span = (hr_s.amax(dim=(1, 2, 3), keepdim=True) - lo).clamp_min(1e-6)
        return (((sr_s - lo) / span).expand(-1, 3, -1, -1), ((hr_s - lo) / span).expand(-1, 3, -1, -1))


def make_grid(sr01: torch.Tensor, bicubic01: torch.Tensor, lr01: torch.Tensor, hr01: torch.Tensor,
              scale: int, spectra: bool = False) -> Image.Image:
    """One column per validation image, one labelled row per rendering.

    sr01, bicubic01, hr01: (N, 3, H, W) in [0, 1]; lr01: (N, 3, H/scale, W/scale) in [0, 1],
    shown nearest-upscaled so its pixels are visible at the HR size. `spectra` adds the
    rows of `spectra_rows` (config data.grid_spectra).
    """
    lr_big = lr01.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    rows = [sr01, bicubic01, lr_big, hr01]
    labels = ROWS
    if spectra:
        rows += list(spectra_rows(sr01, hr01))
        labels = ROWS + SPECTRA_ROWS
    n, _, h, w = hr01.shape
    width = LABEL_WIDTH + n * (w + GAP)
    height = len(rows) * (h + GAP)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for r, (label, row) in enumerate(zip(labels, rows)):
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

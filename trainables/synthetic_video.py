"""The built-in clips (`data.source` `video_builtin`): a synthetic camera over the built-in photographs.

Made offline from the built-in photographs (`trainables.sources`' `builtin`): a camera
pans (0.5-2.4 frame pixels a frame, slowly turning) and zooms (up to 0.4 % a frame) over
each photograph, seeing it at about half its resolution (`ZOOM`); every 128x128 frame is
rendered by bicubic resampling at sub-pixel positions on a 2x finer grid, then
antialiased down, so frames are sharp and neighbouring frames hold the scene at
different sub-pixel phases: what a video SR model can exploit. Three clips of 16 frames
per photograph large enough (all but page.png and text.png); the motion is a fixed
function of (photo, clip), never of the trial seed. Validation: the clips of the
validation photographs (`BUILTIN_VAL`); `data.limit` caps the training photographs, as
for `builtin`.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math

import numpy as np
import torch
import torch.nn.functional as F

from trainables import sources
from trainables.config import DataConfig
from trainables.decoded_cache import cached_groups, code_fingerprint
from trainables.errors import UserError
from trainables.sources import read_images

BUILTIN_SIDE = 128  # frame side in pixels
BUILTIN_LENGTH = 16  # frames per clip
BUILTIN_CLIPS_PER_PHOTO = 3
ZOOM = (0.5, 0.6)  # frame pixels per photo pixel at frame 0: frames are sharp, as a camera's
ZOOM_RATE = 0.004  # largest zoom change per frame (0.4 %)
SUPERSAMPLE = 2  # frames are rendered this much finer, then downscaled with antialiasing
MOTION_SEED = 90_001  # the camera paths' seed: fixed, so every trial sees the same clips


def camera_path(length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A smooth pan and zoom: (L, 2) camera centres (x, y) in photo pixels, relative to frame 0, and (L,) zooms.

    Zoom is frame pixels per photo pixel: it starts in ZOOM and changes by up to 0.4 %
    a frame. The camera moves 1-4 photo pixels (0.5-2.4 frame pixels) a frame, in a
    direction that turns by up to 0.08 rad a frame.
    """
    speed = rng.uniform(1.0, 4.0)
    angle = rng.uniform(0, 2 * math.pi) + rng.uniform(-0.08, 0.08) * np.arange(length - 1)
    steps = speed * np.stack([np.cos(angle), np.sin(angle)], axis=1)  # (L-1, 2)
    centres = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])  # (L, 2)
    zooms = rng.uniform(*ZOOM) * (1 + rng.uniform(-ZOOM_RATE, ZOOM_RATE)) ** np.arange(length)
    return centres, zooms


def render_clip(photo: np.ndarray, centres: np.ndarray, zooms: np.ndarray, side: int,
                supersample: int = SUPERSAMPLE) -> np.ndarray:
    """Frames (L, side, side, 3) uint8 of a camera over `photo` (H, W, 3), at sub-pixel positions.

    Frame pixel (u, v) of frame t shows the photo around centres[t] + ((u, v) - (side - 1) / 2) / zooms[t]
    (pixel-centre coordinates): the photo is sampled bicubically on a grid `supersample`
    times finer, then downscaled by antialiased bicubic (a camera integrates over its
    pixel; zooms below 1 then do not alias). `centres` must keep every frame inside the photo.
    """
    fine = side * supersample
    u = torch.arange(fine, dtype=torch.float64) - (fine - 1) / 2  # fine-pixel offsets from the centre
    reach = (fine - 1) / 2 / (zooms.min() * supersample) + 3  # bicubic taps reach 2 px past a sample point
    # resample from the part of the photo the clip covers: grid_sample's cost grows with its input
    x0, y0 = (max(int(math.floor(c - reach)), 0) for c in centres.min(0))
    x1, y1 = (int(math.ceil(c + reach)) + 1 for c in centres.max(0))
    part = photo[y0:y1, x0:x1]
    h, w, _ = part.shape
    img = torch.from_numpy(np.ascontiguousarray(part.transpose(2, 0, 1)))[None].to(torch.float64)  # (1, 3, h, w)
    c = torch.from_numpy(centres - (x0, y0))  # (L, 2) camera centres in `part`
    z = torch.from_numpy(np.asarray(zooms, np.float64))[:, None] * supersample  # (L, 1) fine px per photo px
    x, y = c[:, :1] + u / z, c[:, 1:] + u / z  # (L, fine): pixel-centre coordinates of columns, rows
    # grid_sample with align_corners=False: -1 and 1 are the outer edges of the border pixels
    gx, gy = (2 * x + 1) / w - 1, (2 * y + 1) / h - 1
    grid = torch.stack([gx[:, None, :].expand(-1, fine, -1), gy[:, :, None].expand(-1, -1, fine)], dim=-1)
    frames = F.grid_sample(img.expand(len(c), -1, -1, -1), grid, mode="bicubic", padding_mode="border",
                           align_corners=False)  # (L, 3, fine, fine)
    if supersample > 1:
        frames = F.interpolate(frames, size=(side, side), mode="bicubic", antialias=True, align_corners=False)
    clip = frames.round_().clamp_(0, 255).to(torch.uint8)  # (L, 3, side, side)
    return np.ascontiguousarray(clip.permute(0, 2, 3, 1).numpy())  # (L, side, side, 3)


def min_photo_side(side: int = BUILTIN_SIDE, length: int = BUILTIN_LENGTH) -> int:
    """The smallest photo side a clip fits in at the widest zoom (photos below it are left out)."""
    return math.ceil(side / (ZOOM[0] * (1 - ZOOM_RATE) ** (length - 1))) + 8


def photo_clip(photo: np.ndarray, rng: np.random.Generator, side: int = BUILTIN_SIDE,
               length: int = BUILTIN_LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """One built-in clip over `photo` and its camera centres (L, 2) in photo pixels.

    The path is placed at random where the whole clip stays inside the photo (a path
    longer than the photo allows is shrunk along that axis).
    """
    centres, zooms = camera_path(length, rng)
    size = np.array(photo.shape[1::-1], np.float64)  # (W, H)
    half = side / (2 * zooms.min()) + 3  # + 3 px: the bicubic taps stay inside the photo
    room = size - 2 * half  # where a centre may go
    if (room < 0).any():
        raise ValueError(f"photo {photo.shape[1]}x{photo.shape[0]} is smaller than a clip needs")
    span = centres.max(0) - centres.min(0)
    shrink = np.minimum(1.0, room / np.maximum(span, 1e-9))
    centres = (centres - centres.min(0)) * shrink  # (L, 2), from 0 to span * shrink
    centres = centres + half + rng.uniform(0, 1, 2) * (room - span * shrink)
    return render_clip(photo, centres, zooms, side), centres


def builtin_clips(cfg: DataConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`BUILTIN_CLIPS_PER_PHOTO` clips of every built-in photograph: (train, val), val capped at data.val_images."""
    if cfg.patch_size > BUILTIN_SIDE:
        raise UserError(f"data.patch_size {cfg.patch_size}: larger than the built-in clips' "
                        f"{BUILTIN_SIDE}x{BUILTIN_SIDE} frames")

    def render() -> list[list[np.ndarray]]:
        # the photographs a clip fits in (page.png and text.png are too short)
        photos = read_images(dataclasses.replace(cfg, source="builtin", patch_size=min_photo_side()))
        return [[photo_clip(photo, np.random.default_rng([MOTION_SEED, split, k, j]))[0]
                 for k, photo in enumerate(group) for j in range(BUILTIN_CLIPS_PER_PHOTO)]
                for split, group in enumerate(photos)]  # 0: training photos, 1: validation photos

    # seconds of rendering per trial otherwise; the clips depend on these values and this code only
    key = {"limit": cfg.limit, "val_images": cfg.val_images, "skimage": importlib.metadata.version("scikit-image"),
           "code": code_fingerprint([__file__, sources.__file__])}
    train, val = cached_groups("video_builtin", key, render, enabled=cfg.cache_decoded)
    return train, val[: cfg.val_images]

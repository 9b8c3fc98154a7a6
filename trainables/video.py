"""Windows of neighbouring frames for the temporal generator, cut from clips (`trainables.clips`).

Windows: a training item is uint8 (T*3, P, P), frames t-k..t+k (T = data.frames,
k = T // 2) stacked frame-major: channels 3j..3j+2 are frame t-k+j, the centre frame t
is the target. Centre frames are drawn from t = 2..L-3 for every window (`MARGIN`),
so windows 1, 3 and 5 of one seed train on the same centre crops and validate on the
same frames, with the same bicubic scores: their results compare directly.
Validation: per validation clip, `data.val_patches_per_image` crops on the image
sources' fixed grid, each at `data.val_frames` consecutive centre frames around the
clip's middle; consecutive frames of one crop form the pairs of `val_tc`.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from trainables.clips import MARGIN, MIN_TRAIN_FRAMES, MIN_VAL_FRAMES, load_clips
from trainables.config import TrialConfig
from trainables.data import EpochDataset, val_patches
from trainables.sampler import area_draw, transforms, uniform_below


PLAN_KEYS = ("k", "centre", "top", "left", "t", "backwards")  # a TrainWindows plan's draws per item


class VideoData(NamedTuple):
    train: "TrainWindows"
    val_hr: Tensor  # (N, T*3, P, P) uint8 validation windows, step-major (see `val_windows`)
    tc_pairs: Tensor  # (M, 2) long: indices (a, b) of frames t, t+1 of one crop


def centre_frame(x: Tensor) -> Tensor:
    """(B, T*3, H, W) window -> (B, 3, H, W) centre frame; a (B, 3, H, W) batch is returned as is."""
    t = x.shape[1] // 3
    if t == 1:
        return x
    k = t // 2
    return x[:, 3 * k : 3 * k + 3]


def video_data(cfg: TrialConfig) -> VideoData:
    """The training windows, the validation windows and their val_tc pairs of a video source."""
    d = cfg.data
    train_clips, val_clips = load_clips(d)
    train = TrainWindows(train_clips, d.frames, d.patch_size, d.crop, d.augment,
                         length=cfg.schedule.patches_per_epoch, seed=cfg.seed)
    val_hr, pairs = val_windows(val_clips, d.frames, d.patch_size, d.val_patches_per_image, d.val_frames)
    return VideoData(train, val_hr, pairs)


def _check_clips(clips: Sequence[np.ndarray], patch_size: int, min_frames: int) -> None:
    if not clips:
        raise ValueError("no clips to cut windows from")
    for k, clip in enumerate(clips):
        if clip.ndim != 4 or clip.shape[3] != 3 or clip.dtype != np.uint8:
            raise ValueError(f"clip {k}: expected uint8 (L, H, W, 3), got {clip.dtype} {clip.shape}")
        if clip.shape[0] < min_frames:
            raise ValueError(f"clip {k} has {clip.shape[0]} frames, fewer than {min_frames}")
        if min(clip.shape[1:3]) < patch_size:
            raise ValueError(f"clip {k} is {clip.shape[2]}x{clip.shape[1]}, smaller than patch {patch_size}")


class TrainWindows(EpochDataset):
    """`length` windows per epoch, each uint8 (T*3, P, P): frames t-k..t+k of one crop of one clip.

    Item i of epoch e is a pure function of (seed, e, i), as `data.TrainPatches`. Random
    crops are uniform over every (clip, centre frame, position), so long and large clips
    weigh more; centre crops pick a clip and a centre frame uniformly. With `augment`,
    one of the 8 dihedral transforms is applied to every frame alike and the window is
    played backwards with probability 1/2 (motion the other way round). The random draws
    do not depend on T: windows 1, 3 and 5 of one seed see the same centre crops.
    """

    def __init__(self, clips: Sequence[np.ndarray], frames: int, patch_size: int,
                 crop: Literal["random", "center"] = "random", augment: bool = True,
                 length: int = 4096, seed: int = 0):
        _check_clips(clips, patch_size, MIN_TRAIN_FRAMES)
        if frames not in (1, 3, 5):
            raise ValueError(f"frames: got {frames}, expected 1, 3 or 5")
        super().__init__(clips, patch_size, crop, augment, length, seed)
        self.clips = self.bank.arrays  # views of the bank's host buffer
        self.frames = frames
        p = patch_size
        self._centres = torch.tensor([c.shape[0] - 2 * MARGIN for c in self.clips], dtype=torch.int64)
        self._cols = torch.tensor([c.shape[2] - p + 1 for c in self.clips], dtype=torch.int64)
        self._places = torch.tensor([c.shape[1] - p + 1 for c in self.clips], dtype=torch.int64) * self._cols

    def draw(self, gen: torch.Generator) -> dict[str, Tensor]:
        n, p = self.length, self.patch_size
        if self.crop == "random":  # uniform over every (clip, centre frame, position)
            k, offset = area_draw(self._centres * self._places, n, gen)
            step, place = offset // self._places[k], offset % self._places[k]
            top, left = place // self._cols[k], place % self._cols[k]
        else:  # a clip uniformly, then one of its centre frames uniformly
            k, _ = area_draw(torch.ones(len(self.clips), dtype=torch.int64), n, gen)
            step = uniform_below(self._centres[k], gen)
            rows = self._places[k] // self._cols[k]
            top, left = (rows - 1) // 2, (self._cols[k] - 1) // 2  # (H - P) // 2, (W - P) // 2
        t = transforms(n, self.augment, gen)
        backwards = transforms(n, self.augment, gen, choices=2)
        return {"k": k, "centre": MARGIN + step, "top": top, "left": left, "t": t, "backwards": backwards}

    def cut(self, items: Tensor) -> Tensor:
        plan = self.plan()
        k, centre, top, left, t, backwards = (plan[key][items] for key in PLAN_KEYS)
        half = self.frames // 2
        # (B, T) frames t-k..t+k, or t+k..t-k when played backwards; one transform for every frame
        slots = torch.arange(-half, half + 1, device=centre.device)
        frames = centre[:, None] + (1 - 2 * backwards)[:, None] * slots
        return self.bank.cut(k, frames, top, left, t, self.patch_size)  # (B, T*3, P, P)


def val_windows(clips: Sequence[np.ndarray], frames: int, patch_size: int, per_clip: int,
                steps: int) -> tuple[Tensor, Tensor]:
    """Deterministic validation windows (N, T*3, P, P) uint8 and their val_tc pairs (M, 2).

    Per clip: `per_clip` crops on the image sources' grid (`data.val_patches`) at
    min(steps, L - 4) consecutive centre frames around the clip's middle. Step-major
    order: item s * G + g is step s of crop g (G crops of all clips together), so the
    first items (the sample grid's) are different crops; pairs are (s*G + g, (s+1)*G + g).
    A clip with fewer steps than another contributes to the first steps only.
    """
    _check_clips(clips, patch_size, MIN_VAL_FRAMES)
    if steps < 2:
        raise ValueError(f"steps: got {steps}, expected >= 2 (val_tc pairs consecutive frames)")
    half = frames // 2
    runs: list[list[Tensor]] = []  # one per crop: its windows at consecutive centre frames
    for clip in clips:
        n = min(steps, clip.shape[0] - 2 * MARGIN)
        first = MARGIN + (clip.shape[0] - 2 * MARGIN - n) // 2
        # crops of every frame any window needs: frame f -> (per_clip, 3, P, P)
        crops = {f: val_patches([clip[f]], patch_size, per_clip)
                 for f in range(first - half, first + n + half)}
        for g in range(per_clip):
            runs.append([torch.cat([crops[f][g] for f in range(c - half, c + half + 1)])  # (T*3, P, P)
                         for c in range(first, first + n)])
    items: list[Tensor] = []
    index: dict[tuple[int, int], int] = {}  # (crop, step) -> item
    for s in range(max(len(r) for r in runs)):
        for g, run in enumerate(runs):
            if s < len(run):
                index[g, s] = len(items)
                items.append(run[s])
    pairs = [(index[g, s], index[g, s + 1]) for g, run in enumerate(runs) for s in range(len(run) - 1)]
    return torch.stack(items), torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)

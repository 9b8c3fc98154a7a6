"""Whole-batch patch sampling: one random plan per epoch, one gather per batch.

A training epoch is a *plan*: for each of its items, which image (or clip), where,
which of the 8 dihedral transforms, and for clips which centre frame and direction.
The plan is drawn at once from a torch.Generator seeded by (seed, epoch), on the CPU,
so it is the same on every device and every rank; rank r of W takes items r, r + W, ...
(the shards are disjoint and together they are the one-process epoch). A resumed run
draws the same plan for the same epoch: resume after epoch k equals an uninterrupted run.

The pixels live in a `PixelBank`: every image (H, W, 3) or clip (L, H, W, 3), uint8,
flattened into one buffer. A batch of crops is one `take` from it with an index tensor
(B, T, 3, P, P) that already holds the crop position, frame order and dihedral
transform, so no Python runs per item. The bank sits on the training device when it
fits under `data.device_cache_mb`; otherwise it stays in (pinned) host memory and each
batch is cut there, pinned and copied over asynchronously.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

SEED_SALT = 0x5EED_DA7A  # keeps the plan's stream apart from any other seeded by (seed, epoch)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator that is a pure function of (seed, epoch)."""
    state = np.random.SeedSequence([SEED_SALT, seed % 2**63, epoch]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def area_draw(counts: Tensor, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """n draws uniform over all (item, offset) pairs, item k having counts[k] offsets.

    An item is picked with probability counts[k] / counts.sum(): images weighted by their
    number of crop positions, clips by their (centre frame, position) pairs; counts of
    ones pick items uniformly. Returns (item (n,), offset within the item (n,)), int64.
    """
    ends = torch.cumsum(counts, 0)  # (K,) offsets of items 0..k together
    pos = torch.randint(int(ends[-1]), (n,), generator=gen, dtype=torch.int64)
    k = torch.searchsorted(ends, pos, right=True)
    return k, pos - (ends[k] - counts[k])


def uniform_below(high: Tensor, gen: torch.Generator) -> Tensor:
    """One integer uniform in [0, high[i]) per entry of `high` (int64)."""
    u = torch.rand(high.shape, generator=gen, dtype=torch.float64)
    return torch.minimum((u * high).long(), high - 1)


def transforms(n: int, augment: bool, gen: torch.Generator, choices: int = 8) -> Tensor:
    """(n,) int64 dihedral transform (or direction) per item: uniform over `choices`, 0 without augment."""
    if not augment:
        return torch.zeros(n, dtype=torch.int64)
    return torch.randint(choices, (n,), generator=gen, dtype=torch.int64)


def dihedral_maps(p: int) -> tuple[Tensor, Tensor]:
    """(8, P, P) source row and column of each output pixel, per transform t.

    Transform t is `data.dihedral`'s: t % 4 counter-clockwise quarter turns, then a
    left-right flip when t >= 4; rows[t][y, x], cols[t][y, x] is where output pixel
    (y, x) of a P x P crop comes from.
    """
    y, x = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")  # (P, P) each
    rows, cols = [], []
    for t in range(8):
        ry, rx = torch.rot90(y, t % 4, dims=(0, 1)), torch.rot90(x, t % 4, dims=(0, 1))
        if t >= 4:
            ry, rx = ry.flip(1), rx.flip(1)
        rows.append(ry)
        cols.append(rx)
    return torch.stack(rows), torch.stack(cols)


class PixelBank:
    """Images (H, W, 3) or clips (L, H, W, 3), uint8, of any sizes, in one flat buffer.

    `arrays` returns numpy views of the (host) buffer, so the bank costs no second
    copy of the data. `place` moves the buffer to the training device when it fits.
    """

    def __init__(self, arrays: Sequence[np.ndarray]):
        shapes = [a.shape if a.ndim == 4 else (1, *a.shape) for a in arrays]  # (L, H, W, 3)
        sizes = [int(np.prod(s)) for s in shapes]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.host = torch.empty(int(sum(sizes)), dtype=torch.uint8)
        flat = self.host.numpy()
        views = []
        for a, s, start, size in zip(arrays, shapes, starts, sizes):
            flat[start:start + size] = np.ascontiguousarray(a).reshape(-1)
            views.append(flat[start:start + size].reshape(a.shape))
        self.arrays = views
        self.buffer = self.host  # where batches are cut from: host, or a copy on the device
        # (K,) first byte, height and width of each array: kept on the host, copied where the buffer goes
        self._layout = (torch.from_numpy(starts), torch.tensor([s[1] for s in shapes], dtype=torch.int64),
                        torch.tensor([s[2] for s in shapes], dtype=torch.int64))
        self.start, self.height, self.width = self._layout
        self.device = torch.device("cpu")  # where batches leave for
        self._maps: dict[int, tuple[Tensor, Tensor]] = {}

    @property
    def nbytes(self) -> int:
        return self.host.numel()

    def place(self, device: torch.device, cap_mb: float) -> None:
        """Batches leave on `device`; the buffer moves there when it is at most cap_mb MiB."""
        self.device = torch.device(device)
        on_device = self.device.type != "cpu" and self.nbytes <= cap_mb * 2**20
        # a host bank is not pinned itself: each cut batch is (a copy of it would double host memory)
        self.buffer = self.host.to(self.device) if on_device else self.host
        where = self.buffer.device
        self.start, self.height, self.width = (v.to(where) for v in self._layout)
        self._maps = {}

    def cut(self, k: Tensor, frames: Tensor, top: Tensor, left: Tensor, t: Tensor, p: int) -> Tensor:
        """Crops (B, T*3, P, P) uint8 on `self.device`, in one gather.

        k (B,) array index, frames (B, T) frame of each window slot (0 for images), top,
        left (B,) crop corner, t (B,) dihedral transform; all int64, on any device.
        """
        where = self.buffer.device
        k, frames, top, left, t = (v.to(where) for v in (k, frames, top, left, t))
        if p not in self._maps:
            self._maps[p] = tuple(m.to(where) for m in dihedral_maps(p))
        rows, cols = self._maps[p]
        w = self.width[k].view(-1, 1, 1)  # (B, 1, 1)
        b = k.shape[0]
        # pixel (RGB triple) of every output pixel within its frame, transform included: (B, P, P)
        pixel = (top.view(b, 1, 1) * w + left.view(b, 1, 1)) + rows[t] * w + cols[t]
        first = (self.start[k] // 3).view(b, 1) + (self.height[k] * w.view(-1)).view(b, 1) * frames  # (B, T) frame starts
        index = first.view(b, -1, 1, 1) + pixel.view(b, 1, p, p)  # (B, T, P, P)
        # every image starts on a pixel boundary: gather whole RGB triples, then go channels-first
        rgb = self.buffer.view(-1, 3).index_select(0, index.view(-1)).view(b, -1, p, p, 3)  # (B, T, P, P, 3)
        out = rgb.permute(0, 1, 4, 2, 3).contiguous().view(b, -1, p, p)  # (B, T*3, P, P)
        if out.device != self.device:  # host bank, device training: pinned, asynchronous copy
            out = out.pin_memory().to(self.device, non_blocking=True)
        return out

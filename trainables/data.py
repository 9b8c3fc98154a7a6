"""HR patches for training and validation, and the DataLoader that batches them.

Images come from `load_images` (`trainables.sources`, `trainables.div2k`) as uint8
(H, W, 3) RGB arrays; patches leave as uint8 (3, P, P) tensors. Turning them into
[0, 1] / [-1, 1] floats and making LR from HR is `trainables.degrade`'s job.

Training item i of epoch e is a pure function of (seed, e, i): each epoch's crop
positions and transforms are drawn at once from a (seed, epoch) generator
(`trainables.sampler`), so ranks, DataLoader workers and an exact resume all see the
same patches; a batch is cut from the image bank with one gather (`BatchLoader`).
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from trainables.config import DataConfig
from trainables.div2k import load_div2k
from trainables.sampler import PixelBank, area_draw, epoch_generator, transforms
from trainables.sources import read_images

__all__ = ["BatchLoader", "EpochDataset", "TrainPatches", "load_images", "make_loader", "val_patches", "grid_offsets", "dihedral"]


def load_images(cfg: DataConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Decode `cfg.source` into (train, val) lists of uint8 (H, W, 3) RGB arrays."""
    return load_div2k(cfg) if cfg.source == "div2k" else read_images(cfg)


def dihedral(patch: np.ndarray, t: int) -> np.ndarray:
    """One of the 8 flips/rotations of a (P, P, C) patch: t % 4 quarter turns, then a
    left-right flip when t >= 4. t = 0 is the identity. Returns a view."""
    out = np.rot90(patch, t % 4, axes=(0, 1))
    return out[:, ::-1] if t >= 4 else out


def grid_offsets(length: int, patch_size: int, n: int) -> list[int]:
    """Top/left offsets of n crops spread over an axis: each crop is centred on the centre
    of one of n equal cells, clamped inside the image. n = 1 gives the centre crop
    offset (length - patch_size) // 2."""
    return [min(max(((2 * j + 1) * length - n * patch_size) // (2 * n), 0), length - patch_size)
            for j in range(n)]


def _grid_shape(per_image: int, tall: bool) -> tuple[int, int]:
    """(rows, cols) with rows * cols == per_image, as square as possible; the longer
    image side gets the larger count. A prime count gives a single row (or column)."""
    small = max(d for d in range(1, int(per_image ** 0.5) + 1) if per_image % d == 0)
    big = per_image // small
    return (big, small) if tall else (small, big)


def _check_sizes(images: Sequence[np.ndarray], patch_size: int) -> None:
    if not images:
        raise ValueError("no images to cut patches from")
    for k, img in enumerate(images):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image {k}: expected uint8 (H, W, 3), got {img.dtype} {img.shape}")
        if min(img.shape[:2]) < patch_size:
            raise ValueError(f"image {k} is {img.shape[1]}x{img.shape[0]}, smaller than patch {patch_size}")


class EpochDataset(Dataset):
    """`length` items per epoch, each a pure function of (seed, epoch, index).

    Subclasses draw an epoch's whole plan at once (`draw`: a dict of (length, ...) int64
    tensors from one (seed, epoch) generator) and cut any items of it with one gather
    (`cut`). The epoch lives in a shared-memory scalar so persistent DataLoader workers
    see `set_epoch` too; call it before iterating the epoch's loader. The arrays (images or
    clips) go into one `sampler.PixelBank`; `crop` is "random" or "center".
    """

    def __init__(self, arrays: Sequence[np.ndarray], patch_size: int, crop: str, augment: bool,
                 length: int, seed: int):
        if crop not in ("random", "center"):
            raise ValueError(f"crop: got {crop!r}, expected 'random' or 'center'")
        self.bank = PixelBank(arrays)
        self.patch_size = patch_size
        self.crop = crop
        self.augment = augment
        self.length = length
        self.seed = seed % 2**63
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._plan: tuple[int, dict[str, torch.Tensor]] | None = None  # (epoch, plan)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def __len__(self) -> int:
        return self.length

    def plan(self) -> dict[str, torch.Tensor]:
        """This epoch's draws, drawn once per epoch (in each process that asks)."""
        epoch = self.epoch
        if self._plan is None or self._plan[0] != epoch:
            # drawn on the CPU (the same numbers on every device), kept where batches are cut
            where = self.bank.buffer.device
            self._plan = (epoch, {k: v.to(where) for k, v in self.draw(epoch_generator(self.seed, epoch)).items()})
        return self._plan[1]

    def draw(self, gen: torch.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def cut(self, items: torch.Tensor) -> torch.Tensor:
        """Items (B,) of this epoch as one uint8 batch (B, C, P, P)."""
        raise NotImplementedError

    def place(self, device: torch.device, cap_mb: float) -> None:
        """Cut batches on/for `device` (see `sampler.PixelBank.place`)."""
        self.bank.place(device, cap_mb)
        self._plan = None

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < self.length:
            raise IndexError(f"item {i} of {self.length}")
        return self.cut(torch.tensor([i], device=self.bank.buffer.device))[0].cpu()


class TrainPatches(EpochDataset):
    """`length` HR patches per epoch, each a uint8 (3, P, P) tensor.

    Random crops are uniform over every distinct patch position in the whole image set,
    so an image is picked with probability proportional to its number of crop positions
    (about its area): a few large photographs mixed with small ones are not
    under-sampled per pixel. Centre crops pick images uniformly (each has one patch).
    With `augment`, one of the 8 dihedral transforms is applied.
    """

    def __init__(self, images: Sequence[np.ndarray], patch_size: int,
                 crop: Literal["random", "center"] = "random", augment: bool = True,
                 length: int = 4096, seed: int = 0):
        _check_sizes(images, patch_size)
        super().__init__(images, patch_size, crop, augment, length, seed)
        self.images = self.bank.arrays  # views of the bank's host buffer
        p = patch_size
        self._cols = torch.tensor([img.shape[1] - p + 1 for img in self.images], dtype=torch.int64)
        self._rows = torch.tensor([img.shape[0] - p + 1 for img in self.images], dtype=torch.int64)

    def draw(self, gen: torch.Generator) -> dict[str, torch.Tensor]:
        n, p = self.length, self.patch_size
        if self.crop == "random":
            k, offset = area_draw(self._rows * self._cols, n, gen)  # uniform over every crop position
            top, left = offset // self._cols[k], offset % self._cols[k]
        else:
            k, _ = area_draw(torch.ones(len(self.images), dtype=torch.int64), n, gen)
            top, left = (self._rows[k] - 1) // 2, (self._cols[k] - 1) // 2  # (H - P) // 2, (W - P) // 2
        return {"k": k, "top": top, "left": left, "t": transforms(n, self.augment, gen)}

    def cut(self, items: torch.Tensor) -> torch.Tensor:
        plan = self.plan()
        k, top, left, t = (plan[key][items] for key in ("k", "top", "left", "t"))
        return self.bank.cut(k, torch.zeros_like(k)[:, None], top, left, t, self.patch_size)  # (B, 3, P, P)


def val_patches(images: Sequence[np.ndarray], patch_size: int, per_image: int = 1) -> torch.Tensor:
    """Deterministic validation patches, uint8 (N * per_image, 3, P, P), image-major.

    per_image = 1 takes each image's centre crop; more take a rows x cols grid of crops
    (rows * cols == per_image, as square as possible, the longer side getting more),
    each centred on one grid cell, row-major.
    """
    _check_sizes(images, patch_size)
    if per_image < 1:
        raise ValueError(f"per_image: got {per_image}, expected >= 1")
    p = patch_size
    out = []
    for img in images:
        h, w = img.shape[:2]
        rows, cols = _grid_shape(per_image, tall=h > w)
        for top in grid_offsets(h, p, rows):
            for left in grid_offsets(w, p, cols):
                out.append(img[top:top + p, left:left + p])
    return torch.from_numpy(np.ascontiguousarray(np.stack(out).transpose(0, 3, 1, 2)))


class BatchLoader:
    """Batches (B, C, P, P) uint8 of an `EpochDataset`, cut with one gather each, on the bank's device.

    Rank r of world_size takes items r, r + world_size, ... of the epoch (as a
    DistributedSampler without shuffling and with drop_last), and incomplete batches are
    dropped. Call `dataset.set_epoch(e)` before iterating each epoch. With a host bank and
    a CUDA device, the next batch is cut and its copy started before this one is used.
    """

    sampler = None  # ranks shard in `__iter__`; nothing for the trainer to set_epoch

    def __init__(self, dataset: EpochDataset, batch_size: int, rank: int = 0, world_size: int = 1):
        self.dataset, self.batch_size, self.rank, self.world_size = dataset, batch_size, rank, world_size
        per_rank = dataset.length // world_size
        self._items = torch.arange(rank, per_rank * world_size, world_size)  # (per_rank,)

    def __len__(self) -> int:
        return len(self._items) // self.batch_size

    def __iter__(self):
        b = self.batch_size
        mine = self._items.to(self.dataset.bank.buffer.device)  # where the plan is
        ahead = None
        for j in range(len(self)):
            batch = self.dataset.cut(mine[j * b:(j + 1) * b])  # (B, C, P, P) uint8
            if ahead is not None:
                yield ahead
            ahead = batch
        if ahead is not None:
            yield ahead


def make_loader(dataset: EpochDataset, batch_size: int, num_workers: int = 0, rank: int = 0,
                world_size: int = 1, seed: int = 0, pin_memory: bool = False):
    """Batches of (B, C, P, P) uint8 patches; incomplete batches are dropped.

    num_workers = 0: a `BatchLoader` (one gather per batch, no per-item Python). More:
    a DataLoader whose worker processes cut the same items one at a time (the same
    batches; for datasets whose bank must stay on the host). Items are already random,
    so neither shuffles: with world_size > 1 each rank takes every world_size-th item.
    """
    if num_workers == 0:
        return BatchLoader(dataset, batch_size, rank, world_size)
    sampler = None
    if world_size > 1:
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank,
                                     shuffle=False, seed=seed, drop_last=True)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, sampler=sampler, num_workers=num_workers,
                      drop_last=True, persistent_workers=True, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(seed))  # seeds workers; items need no randomness

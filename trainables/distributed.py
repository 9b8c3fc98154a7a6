"""torch.distributed helpers: rank and world size from the initialised process group (Ray Train sets it up;
LOCAL_RANK, which Ray Train and torchrun export, picks the GPU), a single process otherwise."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from trainables.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """Rank and world size of an initialised process group, else a single process."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return DistInfo(dist.get_rank(), dist.get_world_size(), local)
    return DistInfo(0, 1, 0)


def pick_device(requested: str, info: DistInfo) -> torch.device:
    """`auto` takes this worker's GPU when CUDA is present, else the CPU."""
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("runtime.device: 'cuda' requested but no CUDA device is visible; use 'auto' or 'cpu'")
    index = info.local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def any_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any rank (so all ranks stop together)."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def sum_across(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (in place on a copy); identity in a single process."""
    if not info.distributed:
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def broadcast(obj: Any, info: DistInfo) -> Any:
    """Rank 0's Python object on every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]

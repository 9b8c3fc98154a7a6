"""Checkpoints: G, D, optimisers, epoch, phase, counters and RNG states in one folder."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainables.config import TrialConfig, dump_yaml, from_dict
from trainables.errors import UserError

STATE_FILE = "state.pt"
CONFIG_FILE = "config.yaml"


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(folder: str | Path, cfg: TrialConfig, state: dict[str, Any]) -> Path:
    """Write `state` (tensors, counters) and the config; atomic via a temp folder + rename."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({**state, "rng": rng_state()}, tmp / STATE_FILE)
    (tmp / CONFIG_FILE).write_text(dump_yaml(cfg))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


def load(folder: str | Path, map_location: str | torch.device = "cpu") -> tuple[TrialConfig, dict[str, Any]]:
    """Read a checkpoint folder (or its state.pt); one-line UserError when it is not one."""
    path = Path(folder)
    if path.is_file() and path.name == STATE_FILE:
        path = path.parent
    state_file = path / STATE_FILE
    if not state_file.is_file():
        raise UserError(f"{path}: not a checkpoint folder (no {STATE_FILE}); pass a folder written by trainables.train")
    try:
        state = torch.load(state_file, map_location=map_location, weights_only=False)
        import yaml

        cfg = from_dict(yaml.safe_load((path / CONFIG_FILE).read_text()))
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise UserError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    return cfg, state

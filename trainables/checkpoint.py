"""Checkpoints: G, D, optimisers, epoch, phase, counters and RNG states in one folder.

The state file holds tensors and plain Python values only, so it loads with
`torch.load(weights_only=True)`: reading a checkpoint never runs code from it (whoever can
write to a study's storage could otherwise run code on every node that resumes from it).
RNG states are stored as tensors and lists. A checkpoint written before this format (its
RNG state pickled numpy objects) is refused with one line naming the conversion command:
`python -m trainables.checkpoint --upgrade DIR`, which reads only numpy's array types.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainables.config import TrialConfig, dump_yaml, from_dict, read_yaml
from trainables.errors import UserError

STATE_FILE = "state.pt"
CONFIG_FILE = "config.yaml"
GENERATOR_FILE = "generator.pt"  # a generator alone (what MLflow holds): its state dict, beside config.yaml
FORMAT = 2  # 2: RNG states as tensors and lists (weights_only); 1 (no key): pickled numpy RNG state
# fault injection ("EPOCH:MARKER_FILE"): the process writing epoch EPOCH's checkpoint dies by SIGKILL
# halfway through its state file, once (while MARKER_FILE exists; it is removed first). Tests and
# `study.faults` use it to tear a checkpoint mid-write, a moment a kill from outside rarely hits.
TEAR_ENV = "SRSTUDY_TEAR_CHECKPOINT"


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states as tensors, ints and lists."""
    version, internal, gauss = random.getstate()  # (3, tuple of 625 ints, None or float)
    state: dict[str, Any] = {"python": [version, list(internal), gauss],
                             "numpy": numpy_rng_state(np.random.get_state()), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def numpy_rng_state(legacy: tuple) -> dict[str, Any]:
    """numpy's ('MT19937', (624,) uint32 keys, pos, has_gauss, cached_gaussian) as a tensor and plain values."""
    name, keys, pos, has_gauss, cached = legacy
    return {"name": str(name), "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save(folder: str | Path, cfg: TrialConfig, state: dict[str, Any]) -> Path:
    """Write `state` (tensors, counters), the config and the generator alone (`save_generator`: what a study
    copies out and MLflow holds); atomic via a temp folder + rename."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({**state, "rng": rng_state(), "format": FORMAT}, tmp / STATE_FILE)
    _tear_if_asked(tmp / STATE_FILE, int(state.get("epoch", -1)))
    save_generator(tmp, cfg, state["generator"])  # so the folder is also a generator folder (+ config.yaml)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


def _tear_if_asked(state_file: Path, epoch: int) -> None:
    """The TEAR_ENV fault: truncate the state file being written to half, then SIGKILL this process."""
    at, _, marker = os.environ.get(TEAR_ENV, "").partition(":")
    if not at or int(at) != epoch or not os.path.exists(marker):
        return
    os.remove(marker)
    data = state_file.read_bytes()
    state_file.write_bytes(data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)


def _state_path(folder: str | Path) -> Path:
    path = Path(folder)
    if path.is_file() and path.name == STATE_FILE:
        path = path.parent
    if not (path / STATE_FILE).is_file():
        raise UserError(f"{path}: not a checkpoint folder (no {STATE_FILE}); pass a folder written by trainables.train")
    return path


def load(folder: str | Path, map_location: str | torch.device = "cpu") -> tuple[TrialConfig, dict[str, Any]]:
    """Read a checkpoint folder (or its state.pt); one-line UserError when it is not one."""
    path = _state_path(folder)
    try:
        state = torch.load(path / STATE_FILE, map_location=map_location, weights_only=True)
        cfg = from_dict(read_yaml(path / CONFIG_FILE, "checkpoint config", UserError))
    except pickle.UnpicklingError as exc:
        if "numpy" in str(exc):  # format 1: numpy RNG state objects, refused by weights_only
            raise UserError(f"{path}: a checkpoint of an older format (pickled RNG state), not loaded for safety; "
                            f"convert it once with: python -m trainables.checkpoint --upgrade {path}") from None
        raise UserError(f"{path}: unreadable checkpoint (UnpicklingError: {str(exc).splitlines()[0][:120]})") from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise UserError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    return cfg, state


def save_generator(folder: str | Path, cfg: TrialConfig, weights: dict[str, torch.Tensor]) -> Path:
    """A generator as a folder of plain files: generator.pt (state dict) + config.yaml (what builds it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(weights, folder / GENERATOR_FILE)
    (folder / CONFIG_FILE).write_text(dump_yaml(cfg))
    return folder


def generator_from_folder(folder: str | Path) -> tuple[TrialConfig, torch.nn.Module]:
    """(config, generator in eval mode on the CPU) from a `save_generator` folder, e.g. one downloaded
    from MLflow; LR (B, 3*frames, h, w) in [0, 1] in, SR (B, 3, h*scale, w*scale) in [-1, 1] out."""
    from trainables.models import build_generator

    folder = Path(folder)
    try:
        cfg = from_dict(read_yaml(folder / CONFIG_FILE, "generator config", UserError))
        weights = torch.load(folder / GENERATOR_FILE, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError, UserError) as exc:
        raise UserError(f"{folder}: not a generator folder ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                        f"expected {GENERATOR_FILE} and {CONFIG_FILE}") from None
    generator = build_generator(cfg)
    generator.load_state_dict(weights)
    return cfg, generator.eval()


def upgrade(folder: str | Path) -> Path:
    """Rewrite a format-1 checkpoint in place as format 2 (RNG states as tensors and lists).

    Still `weights_only=True`, with numpy's array reconstruction allowed: plain arrays, no code.
    """
    path = _state_path(folder)
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array rebuilder, under both module names
    array_types = [(reconstruct, "numpy.core.multiarray._reconstruct"),
                   (reconstruct, "numpy._core.multiarray._reconstruct"), np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    with torch.serialization.safe_globals(array_types):
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    if state.get("format") == FORMAT:
        return path
    version, internal, gauss = state["rng"]["python"]
    state["rng"] = {**state["rng"], "python": [version, list(internal), gauss],
                    "numpy": numpy_rng_state(state["rng"]["numpy"])}
    state["format"] = FORMAT
    tmp = path / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path / STATE_FILE)
    return path


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) != 2 or args[0] != "--upgrade":
        print("usage: python -m trainables.checkpoint --upgrade CHECKPOINT_DIR", file=sys.stderr)
        raise SystemExit(2)
    try:
        print(f"upgraded {upgrade(args[1])}")
    except (UserError, OSError, pickle.UnpicklingError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        raise SystemExit(2)

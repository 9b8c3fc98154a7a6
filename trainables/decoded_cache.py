"""A node-local cache of decoded training data, shared by the trials of a study on one machine.

Rendering the built-in clips (`video_builtin`) takes seconds of CPU per trial, the same
seconds for every trial of a study; the first trial on a node writes its result to
`$SRSTUDY_CACHE_DIR` (default `~/.cache/srstudy`) and later trials read it back in
milliseconds. An entry is keyed by the values that determine its content (data config
fields) and by a fingerprint of the code that makes it, so a changed renderer never
serves stale frames. Writes go to a temporary file renamed into place: trials starting
at once may both build an entry, but none reads a half-written one. `data.cache_decoded:
false` bypasses the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Sequence

import numpy as np

Groups = list[list[np.ndarray]]  # e.g. (train clips, val clips)


def cache_dir() -> Path:
    return Path(os.environ.get("SRSTUDY_CACHE_DIR") or Path.home() / ".cache" / "srstudy")


def code_fingerprint(files: Sequence[str | Path]) -> str:
    """sha256 (16 hex) of source files' bytes: a changed producer makes new keys."""
    h = hashlib.sha256()
    for f in files:
        h.update(Path(f).read_bytes())
    return h.hexdigest()[:16]


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """`write(f)` into a temporary file beside `path`, renamed into place: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def entry_path(kind: str, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return cache_dir() / f"{kind}-{digest}.npz"


def cached_groups(kind: str, key: dict[str, Any], build: Callable[[], Groups], enabled: bool = True) -> Groups:
    """`build()`'s groups of uint8 arrays, read from the cache when an entry for `key` exists."""
    if not enabled:
        return build()
    path = entry_path(kind, key)
    try:
        with np.load(path) as npz:
            sizes = npz["sizes"]
            arrays = [npz[f"a{i}"] for i in range(int(sizes.sum()))]
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        return [arrays[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    except (OSError, KeyError, ValueError):  # no entry yet (or a damaged one): build it
        pass
    groups = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sizes = np.array([len(g) for g in groups], np.int64)
        arrays = {f"a{i}": a for i, a in enumerate(a for g in groups for a in g)}
        write_atomic(path, lambda f: np.savez(f, sizes=sizes, **arrays))
    except OSError:  # a read-only or full home: the trial still runs, uncached
        pass
    return groups

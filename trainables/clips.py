"""Video clip sources: decode `data.source` `video_builtin` or `video_folder` into clips, split by clip.

A clip is an ordered stack of frames, uint8 (L, H, W, 3) RGB. Sources (`data.source`):

- `video_builtin`: a synthetic camera over the built-in photographs (`trainables.synthetic_video`).
- `video_folder`: `data.path` holds clips, the layout of REDS (`train_sharp/000/00000000.png`)
  and Vimeo-90K (`sequences/00001/0001/im1.png`): every folder under it that directly
  holds image files is one clip, its frames in natural order of file name (`im2` before
  `im10`); every video file under it (.mp4, .avi, .mkv, ...) is one clip too, decoded
  with the optional package `av`. Clips are ordered by path (natural order), cut to
  `data.limit`, then split by `sources.val_indices` (the image sources' rule, by clip).

Clips are decoded into memory (use `data.limit` for large sets such as REDS).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from trainables.config import DataConfig
from trainables.errors import UserError
from trainables.sources import IMAGE_EXTENSIONS, decode_image, map_threaded, natural_key, split_by_rule, val_indices
from trainables.synthetic_video import builtin_clips

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
MAX_WINDOW = 5  # the widest window (config: data.frames in 1, 3, 5)
MARGIN = MAX_WINDOW // 2  # centre frames are t = MARGIN..L-1-MARGIN whatever the window
MIN_TRAIN_FRAMES = 2 * MARGIN + 1  # one centre frame
MIN_VAL_FRAMES = 2 * MARGIN + 2  # two consecutive centre frames: one val_tc pair


def load_clips(cfg: DataConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Decode a video source into (train, val) lists of uint8 (L, H, W, 3) clips, split by clip."""
    if cfg.source == "video_builtin":
        return builtin_clips(cfg)
    if cfg.source != "video_folder":
        raise ValueError(f"data.source {cfg.source!r} is not a video source")
    root = Path(cfg.path).expanduser()
    found = list_clips(root)
    if len(found) < 2:
        raise UserError(f"data.path {root}: found {len(found)} clip(s); need at least 2 (one to train on, one to "
                        "validate): one sub-folder of frames, or one video file, per clip")
    found = found[: cfg.limit]
    if any(p.is_file() for p in found):
        _import_av(next(p for p in found if p.is_file()))  # fail before decoding anything
    val_set = set(val_indices(len(found), cfg.val_images))

    def check_length(i: int, path: Path, n: int) -> None:
        need = MIN_VAL_FRAMES if i in val_set else MIN_TRAIN_FRAMES
        if n < need:
            role = "a validation clip needs two consecutive centre frames for val_tc, " if i in val_set else ""
            raise UserError(f"{path}: clip has {n} frame(s), fewer than {need} ({role}centre frames "
                            f"are t=2..n-3 to leave room for the widest window, t-2..t+2)")

    for i, path in enumerate(found):  # frame folders: before decoding anything
        if path.is_dir():
            check_length(i, path, len(frame_paths(path)))
    clips = _decode_clips(found, cfg.patch_size)
    for i, (path, clip) in enumerate(zip(found, clips)):  # video files: their length is known once decoded
        check_length(i, path, clip.shape[0])
    return split_by_rule(clips, cfg.val_images)


def _path_key(path: Path, root: Path) -> tuple:
    return tuple(natural_key(part) for part in path.relative_to(root).parts)


def list_clips(root: Path) -> list[Path]:
    """Every folder under `root` that directly holds images, and every video file, in natural path order."""
    if not root.is_dir():
        what = "is a file, expected a folder of clips" if root.exists() else "no such folder"
        raise UserError(f"data.path {root}: {what}")
    clips: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        names = [f for f in filenames if not f.startswith(".")]
        if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in names):
            clips.append(Path(dirpath))
        clips += [Path(dirpath) / f for f in names if f.lower().endswith(VIDEO_EXTENSIONS)]
    if not clips:
        raise UserError(f"data.path {root}: no clips found (expected one sub-folder of frames "
                        f"({', '.join(IMAGE_EXTENSIONS)}) or one video file ({', '.join(VIDEO_EXTENSIONS)}) per clip)")
    return sorted(clips, key=lambda p: _path_key(p, root))


def frame_paths(folder: Path) -> list[Path]:
    """The image files directly in a clip folder, in natural order of name."""
    names = [f.name for f in folder.iterdir()
             if f.is_file() and not f.name.startswith(".") and f.name.lower().endswith(IMAGE_EXTENSIONS)]
    return [folder / n for n in sorted(names, key=natural_key)]


def _decode_clips(paths: Sequence[Path], patch_size: int) -> list[np.ndarray]:
    """Decode every clip (frames with a few threads; Pillow releases the GIL)."""
    jobs = [frame_paths(p) if p.is_dir() else p for p in paths]
    frames = [f for job in jobs if isinstance(job, list) for f in job]
    decoded = dict(zip(frames, map_threaded(lambda f: decode_image(f, patch_size), frames)))
    clips = []
    for path, job in zip(paths, jobs):
        stack = [decoded[f] for f in job] if isinstance(job, list) else read_video(job)
        sizes = {f.shape for f in stack}
        if len(sizes) > 1:
            (h0, w0, _), (h1, w1, _) = sorted(sizes)[:2]
            raise UserError(f"{path}: frames of different sizes in one clip ({w0}x{h0} and {w1}x{h1})")
        clip = np.stack(stack)  # (L, H, W, 3)
        if min(clip.shape[1:3]) < patch_size:  # a video's frames (image frames were checked on decode)
            raise UserError(f"{path}: frames are {clip.shape[2]}x{clip.shape[1]}, smaller than "
                            f"data.patch_size {patch_size}")
        clips.append(clip)
    return clips


def _import_av(path: Path):
    try:
        import av  # optional: only video files need a decoder
    except ImportError:
        raise UserError(f"{path}: reading video files needs the optional package 'av' (pip install av); "
                        "or extract each clip's frames into a folder") from None
    return av


def read_video(path: Path) -> list[np.ndarray]:
    """Every frame of a video file's first video stream as uint8 (H, W, 3) RGB (needs `av`)."""
    av = _import_av(path)
    errors = (OSError, ValueError, getattr(getattr(av, "error", None), "FFmpegError", OSError))
    try:
        with av.open(str(path)) as container:
            frames = [np.ascontiguousarray(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    except errors as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UserError(f"{path}: not a readable video ({reason})") from None
    if not frames:
        raise UserError(f"{path}: no video frames")
    return frames

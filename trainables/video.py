"""Video clips for the temporal generator: clip sources, windows of neighbouring frames, the built-in clips.

A clip is an ordered stack of frames, uint8 (L, H, W, 3) RGB. Sources (`data.source`):

- `video_builtin`: made offline from the built-in photographs (`trainables.sources`'
  `builtin`): a camera pans (0.5-2.4 frame pixels a frame, slowly turning) and zooms
  (up to 0.4 % a frame) over each photograph, seeing it at about half its resolution
  (`ZOOM`); every 128x128 frame is rendered by bicubic resampling at sub-pixel
  positions on a 2x finer grid, then antialiased down, so frames are sharp and
  neighbouring frames hold the scene at different sub-pixel phases: what a video SR
  model can exploit. Three clips of 16 frames per photograph large enough (all but
  page.png and text.png); the motion is a fixed function of (photo, clip), never of
  the trial seed. Validation: the clips of the validation photographs (`BUILTIN_VAL`);
  `data.limit` caps the training photographs, as for `builtin`.
- `video_folder`: `data.path` holds clips, the layout of REDS (`train_sharp/000/00000000.png`)
  and Vimeo-90K (`sequences/00001/0001/im1.png`): every folder under it that directly
  holds image files is one clip, its frames in natural order of file name (`im2` before
  `im10`); every video file under it (.mp4, .avi, .mkv, ...) is one clip too, decoded
  with the optional package `av`. Clips are ordered by path (natural order), cut to
  `data.limit`, then split by `sources.val_indices` (the image sources' rule, by clip).

Clips are decoded into memory (use `data.limit` for large sets such as REDS).

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

import dataclasses
import importlib.metadata
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.config import DataConfig, TrialConfig
from trainables.data import EpochDataset, val_patches
from trainables.sampler import PixelBank, area_draw, transforms, uniform_below
from trainables.errors import UserError
from trainables import sources
from trainables.decoded_cache import cached_groups, code_fingerprint
from trainables.sources import IMAGE_EXTENSIONS, decode_image, load_images, natural_key, val_indices

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
MAX_WINDOW = 5  # the widest window (config: data.frames in 1, 3, 5)
MARGIN = MAX_WINDOW // 2  # centre frames are t = MARGIN..L-1-MARGIN whatever the window
MIN_TRAIN_FRAMES = 2 * MARGIN + 1  # one centre frame
MIN_VAL_FRAMES = 2 * MARGIN + 2  # two consecutive centre frames: one val_tc pair

# the built-in clips
BUILTIN_SIDE = 128  # frame side in pixels
BUILTIN_LENGTH = 16  # frames per clip
BUILTIN_CLIPS_PER_PHOTO = 3
ZOOM = (0.5, 0.6)  # frame pixels per photo pixel at frame 0: frames are sharp, as a camera's
ZOOM_RATE = 0.004  # largest zoom change per frame (0.4 %)
SUPERSAMPLE = 2  # frames are rendered this much finer, then downscaled with antialiasing
MOTION_SEED = 90_001  # the camera paths' seed: fixed, so every trial sees the same clips


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


# ----------------------------------------------------------------------------- windows


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
        if crop not in ("random", "center"):
            raise ValueError(f"crop: got {crop!r}, expected 'random' or 'center'")
        self.bank = PixelBank(clips)
        self.clips = self.bank.arrays  # views of the bank's host buffer
        self.frames = frames
        self.patch_size = patch_size
        self.crop = crop
        self.augment = augment
        super().__init__(length, seed % 2**63)
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

    def locate(self, i: int) -> tuple[int, int, int, int, int, bool]:
        """(clip, centre frame t, top, left, dihedral transform, reversed) of item i this epoch."""
        plan = self.plan()
        k, centre, top, left, t, backwards = (int(plan[key][i]) for key in
                                              ("k", "centre", "top", "left", "t", "backwards"))
        return k, centre, top, left, t, bool(backwards)

    def cut(self, items: Tensor) -> Tensor:
        plan = self.plan()
        k, centre, top, left, t, backwards = (plan[key][items] for key in
                                              ("k", "centre", "top", "left", "t", "backwards"))
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


# ----------------------------------------------------------------------------- clip sources


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
    return ([c for i, c in enumerate(clips) if i not in val_set],
            [c for i, c in enumerate(clips) if i in val_set])


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
    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    try:
        decoded = dict(zip(frames, pool.map(lambda f: decode_image(f, patch_size), frames)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
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


# ----------------------------------------------------------------------------- built-in clips


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
        photos = load_images(dataclasses.replace(cfg, source="builtin", patch_size=min_photo_side()))
        return [[photo_clip(photo, np.random.default_rng([MOTION_SEED, split, k, j]))[0]
                 for k, photo in enumerate(group) for j in range(BUILTIN_CLIPS_PER_PHOTO)]
                for split, group in enumerate(photos)]  # 0: training photos, 1: validation photos

    # seconds of rendering per trial otherwise; the clips depend on these values and this code only
    key = {"limit": cfg.limit, "val_images": cfg.val_images, "skimage": importlib.metadata.version("scikit-image"),
           "code": code_fingerprint([__file__, sources.__file__])}
    train, val = cached_groups("video_builtin", key, render, enabled=cfg.cache_decoded)
    return train, val[: cfg.val_images]

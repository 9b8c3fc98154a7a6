"""Readers that decode a data source into uint8 (H, W, 3) RGB images, split by image.

Sources (`data.source`), each read in its natural order, cut to `data.limit` images
before anything else is decoded:

- `builtin`: real photographs shipped inside scikit-image's wheel (`skimage/data/`),
  read from disk with Pillow; never the network. Validation is always the two
  photographs in `BUILTIN_VAL`; `limit` caps the training photographs (`BUILTIN_TRAIN`,
  in that order), and training photographs smaller than the patch are left out.
- `folder`: every image under `data.path`, recursively (class subfolders allowed),
  sorted by path; hidden files and folders are skipped.
- `celeba`: a flat folder of aligned JPEGs (`img_align_celeba/`) or its parent.
- `stl10`: STL-10's binary files (`stl10_binary/*_X.bin`, 96x96) under `data.path`.
- `imagenet64`: downsampled-ImageNet `.npz` batches (`data`: (N, 3*S*S) uint8 rows,
  R, G and B planes one after another), a folder of them or one file.
- `div2k`: the DIV2K / Flickr2K layout of HR images, validated on DIV2K_valid_HR when
  present; download, checksum and decoded-image cache in `trainables.div2k`.

Split rule (every source but `builtin`): with n images, `n_val = data.val_images` when
n >= 4 * val_images, else max(1, n // 4); the validation images are `n_val` indices
spread evenly over the ordered list (`val_indices`), so class-sorted folders do not
validate on their last class alone. The rule ignores the trial seed: every trial of a
study validates on the same images.
"""

from __future__ import annotations

import importlib.util
import os
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from trainables.config import DataConfig
from trainables.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Natural photographs in scikit-image's wheel (width x height). Left out: synthetic
# images (chessboard, color wheel, logo, phantom, horse silhouette), clock_motion
# (deliberately blurred), cell (almost featureless), retina (mostly black border; its
# 1411x1411 area would dominate area-weighted sampling), motorcycle_right (a stereo
# twin of motorcycle_left), and the tiny ones (microaneurysms, the gif, lfw_subset).
BUILTIN_TRAIN = (
    "astronaut.png",  # 512x512 RGB
    "rocket.jpg",  # 640x427 RGB
    "motorcycle_left.png",  # 741x500 RGB
    "ihc.png",  # 512x512 RGB, immunohistochemistry micrograph
    "hubble_deep_field.jpg",  # 1000x872 RGB
    "camera.png",  # 512x512 gray
    "coins.png",  # 384x303 gray
    "moon.png",  # 512x512 gray
    "brick.png",  # 512x512 gray
    "grass.png",  # 512x512 gray
    "gravel.png",  # 512x512 gray
    "page.png",  # 384x191 gray, photographed text
    "text.png",  # 448x172 gray, photographed handwriting
)
BUILTIN_VAL = (
    "chelsea.png",  # 451x300 RGB, a cat (fur)
    "coffee.png",  # 600x400 RGB, a cup on a table
)

STL10_SIDE = 96
STL10_FILES = {
    "train": ("train_X.bin",),
    "test": ("test_X.bin",),
    "unlabeled": ("unlabeled_X.bin",),
    "train+unlabeled": ("train_X.bin", "unlabeled_X.bin"),  # torchvision's order
}
_CHUNK = 4096  # images decoded per read from a binary file, to bound temporary memory


def read_images(cfg: DataConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Decode `cfg.source` into (train, val) lists of uint8 (H, W, 3) RGB arrays: every image source but
    div2k (`trainables.div2k`, which splits by its own folders; `data.load_images` asks either)."""
    if cfg.source == "builtin":
        return _load_builtin(cfg)
    images = READERS[cfg.source](cfg)
    if len(images) < 2:
        raise UserError(f"data.path {cfg.path}: found {len(images)} image(s); need at least 2 "
                        "(one to train on, one to validate)")
    return split_by_rule(images, cfg.val_images)


def split_by_rule(items: Sequence[Any], val_images: int) -> tuple[list[Any], list[Any]]:
    """(train, val), each in the items' order: the items at `val_indices` validate, the others train."""
    held = set(val_indices(len(items), val_images))
    return [x for i, x in enumerate(items) if i not in held], [x for i, x in enumerate(items) if i in held]


def val_indices(n: int, val_images: int) -> list[int]:
    """Indices of the validation images among n: `n_val` of them spread evenly."""
    n_val = val_images if n >= 4 * val_images else max(1, n // 4)
    # the centre of each of n_val equal stretches of the list
    return [(2 * k + 1) * n // (2 * n_val) for k in range(n_val)]


# ----------------------------------------------------------------------------- decoding


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def read_image(path: Path, patch_size: int = 0) -> np.ndarray:
    """One image file as contiguous uint8 pixels: (H, W) for gray modes (16-bit and float scaled
    to 8 bits), else (H, W, 3) RGB with alpha dropped; UserError if unreadable or if a side is
    smaller than `patch_size`."""
    try:
        with Image.open(path) as im:
            if min(im.size) < patch_size:  # the header suffices; no need to decode
                raise UserError(f"{path}: image is {im.size[0]}x{im.size[1]}, smaller than "
                                f"data.patch_size {patch_size}")
            if im.getexif().get(0x0112, 1) != 1:  # camera JPEGs store their rotation in EXIF
                from PIL import ImageOps

                im = ImageOps.exif_transpose(im)
            return _pixels(im)
    except UserError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: not a readable image ({_one_line(exc)})") from None


def _pixels(im: Image.Image) -> np.ndarray:
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float gray
        a = np.asarray(im).astype(np.float64)
        a = a / 257.0 if a.max() > 255 else a
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    if im.mode in ("1", "L", "LA"):
        return np.ascontiguousarray(np.asarray(im if im.mode == "L" else im.convert("L")))
    if im.mode == "P" and "transparency" in im.info:  # palette, RGBA, CMYK, ...: alpha is dropped
        im = im.convert("RGBA")
    return np.ascontiguousarray(np.asarray(im if im.mode == "RGB" else im.convert("RGB")))


def decode_image(path: Path, patch_size: int = 0) -> np.ndarray:
    """One image file as a contiguous uint8 (H, W, 3) RGB array (gray replicated); see `read_image`."""
    arr = read_image(path, patch_size)
    return arr if arr.ndim == 3 else np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))


def map_threaded(fn: Callable[[Any], Any], items: Sequence[Any], serial_below: int = 0) -> list[Any]:
    """`fn` over `items` in order, on a few threads (Pillow releases the GIL while decoding); in this
    thread alone for fewer than `serial_below` items."""
    if len(items) < serial_below:
        return [fn(item) for item in items]
    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    try:
        return list(pool.map(fn, items))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _decode_all(paths: list[Path], patch_size: int) -> list[np.ndarray]:
    return map_threaded(lambda p: decode_image(p, patch_size), paths, serial_below=32)


# ----------------------------------------------------------------------------- builtin


def _skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("data.source 'builtin' reads the photographs bundled with scikit-image, which is "
                        "not installed; pip install scikit-image, or use data.source=folder")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _load_builtin(cfg: DataConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    folder = _skimage_data_dir()
    for name in BUILTIN_TRAIN + BUILTIN_VAL:
        if not (folder / name).is_file():
            raise UserError(f"data.source 'builtin': {folder / name} is missing from this scikit-image "
                            "install; use data.source=folder with your own photographs")
    p = cfg.patch_size
    train = [decode_image(folder / n) for n in BUILTIN_TRAIN[: cfg.limit]]
    train = [img for img in train if min(img.shape[:2]) >= p]  # page and text are short
    val = [decode_image(folder / n, p) for n in BUILTIN_VAL[: cfg.val_images]]
    if not train:
        raise UserError(f"data.patch_size {p}: no builtin training photograph is that large")
    return train, val


# ----------------------------------------------------------------------------- folders


def _list_images(root: Path, recursive: bool) -> list[Path]:
    if not root.is_dir():
        what = "is a file, expected a folder" if root.exists() else "no such folder"
        raise UserError(f"data.path {root}: {what}")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        found += [Path(dirpath) / f for f in filenames
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found, key=lambda q: q.relative_to(root).parts)


def _read_folder(cfg: DataConfig) -> list[np.ndarray]:
    root = Path(cfg.path).expanduser()
    paths = _list_images(root, recursive=True)
    if not paths:
        raise UserError(f"data.path {root}: no images found (looked recursively for "
                        f"{', '.join(IMAGE_EXTENSIONS)})")
    return _decode_all(paths[: cfg.limit], cfg.patch_size)


def _read_celeba(cfg: DataConfig) -> list[np.ndarray]:
    root = Path(cfg.path).expanduser()
    folder = root
    while (folder / "img_align_celeba").is_dir():  # the parent, or Kaggle's doubled folder
        folder = folder / "img_align_celeba"
    paths = _list_images(folder, recursive=False)
    if not paths:
        raise UserError(f"data.path {root}: no CelebA images; expected a flat folder of aligned "
                        "JPEGs (img_align_celeba/000001.jpg, ...) or the folder that holds img_align_celeba/")
    return _decode_all(paths[: cfg.limit], cfg.patch_size)


# ----------------------------------------------------------------------------- stl10


def _check_fixed_side(side: int, patch_size: int, source: str) -> None:
    if patch_size > side:
        raise UserError(f"data.patch_size {patch_size} is larger than {source}'s {side}x{side} images")


def read_stl10_bin(path: Path, count: int | None = None) -> np.ndarray:
    """The first `count` images of an STL-10 `*_X.bin` file as (N, 96, 96, 3) uint8."""
    item = 3 * STL10_SIDE * STL10_SIDE
    size = path.stat().st_size
    if size % item:
        raise UserError(f"{path}: {size} bytes is not a whole number of 96x96 RGB STL-10 images "
                        "(a truncated download?)")
    n = size // item if count is None else min(count, size // item)
    out = np.empty((n, STL10_SIDE, STL10_SIDE, 3), np.uint8)
    with open(path, "rb") as f:
        for start in range(0, n, _CHUNK):
            k = min(_CHUNK, n - start)
            # (k, C, col, row): STL-10 stores each channel plane column-major
            raw = np.fromfile(f, np.uint8, k * item).reshape(k, 3, STL10_SIDE, STL10_SIDE)
            out[start:start + k] = raw.transpose(0, 3, 2, 1)
    return out


def _read_stl10(cfg: DataConfig) -> list[np.ndarray]:
    _check_fixed_side(STL10_SIDE, cfg.patch_size, "stl10")
    root = Path(cfg.path).expanduser()
    names = STL10_FILES[cfg.stl10_split]
    folder = root if all((root / n).is_file() for n in names) else root / "stl10_binary"
    missing = [n for n in names if not (folder / n).is_file()]
    if missing and cfg.download:
        _download_stl10(root)
        folder = root / "stl10_binary"
        missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise UserError(f"data.path {root}: no {folder / missing[0]} (STL-10 binary layout, split "
                        f"{cfg.stl10_split!r}); set data.download=true on a machine with internet to fetch it")
    parts, left = [], cfg.limit
    for n in names:
        if left is not None and left <= 0:
            break
        block = read_stl10_bin(folder / n, left)
        parts.append(block)
        left = None if left is None else left - len(block)
    return [img for block in parts for img in block]  # views into the blocks


def _download_stl10(root: Path) -> None:
    from torchvision.datasets import STL10
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(STL10.url, str(root), filename=STL10.filename, md5=STL10.tgz_md5)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise UserError(f"data.download: fetching {STL10.url} into {root} failed ({_one_line(exc)})") from None


# ----------------------------------------------------------------------------- imagenet64


def natural_key(name: str) -> tuple:
    """Sort key that orders digits by value: frame2 < frame10; case-insensitive otherwise."""
    return tuple((0, int(tok), "") if tok.isdigit() else (1, 0, tok.lower()) for tok in re.split(r"(\d+)", name) if tok)


IMAGENET64_SUBFOLDERS = ("imagenet64", "Imagenet64_train_npz", "Imagenet64_train")


def _imagenet64_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise UserError(f"data.path {root}: no such file or folder")
    files = sorted(root.glob("train_data_batch_*.npz"), key=lambda p: natural_key(p.name))
    files = files or sorted(root.glob("*.npz"), key=lambda p: natural_key(p.name))  # e.g. only val_data.npz
    for sub in IMAGENET64_SUBFOLDERS:  # a data root shared with other sources (search_spaces/datasets.yaml)
        if not files and (root / sub).is_dir():
            return _imagenet64_files(root / sub)
    if not files:
        raise UserError(f"data.path {root}: no .npz batches (expected train_data_batch_1.npz, ... or "
                        "val_data.npz in the downsampled-ImageNet npz format)")
    return files


class _NpzRows:
    """The `data` array of an .npz batch, read row by row from the zip stream (no full load)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: not a readable .npz batch ({_one_line(exc)})") from None
        try:
            self.stream = self.zip.open("data.npy")
            version = np.lib.format.read_magic(self.stream)
            header = {(1, 0): np.lib.format.read_array_header_1_0,
                      (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if header is None:
                raise ValueError(f"npy format version {version}")
            self.shape, fortran, dtype = header(self.stream)
        except KeyError:
            self.zip.close()
            raise UserError(f"{path}: no 'data' array (downsampled-ImageNet batches hold data and labels)") from None
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            self.zip.close()
            raise UserError(f"{path}: not a readable .npz batch ({_one_line(exc)})") from None
        side = int(round((self.shape[1] / 3) ** 0.5)) if len(self.shape) == 2 else 0
        if dtype != np.uint8 or fortran or side == 0 or 3 * side * side != self.shape[1]:
            self.close()
            raise UserError(f"{path}: 'data' is {dtype} {self.shape}, expected C-order uint8 (N, 3*S*S) "
                            "rows (R, G, B planes of an SxS image)")
        self.side = side

    def read_into(self, out: np.ndarray) -> None:
        s, k0 = self.side, len(out)
        for start in range(0, k0, _CHUNK):
            k = min(_CHUNK, k0 - start)
            buf = self.stream.read(k * 3 * s * s)
            if len(buf) != k * 3 * s * s:
                raise UserError(f"{self.path}: 'data' ends early (a truncated file?)")
            # (k, C, row, col) planes -> (k, row, col, C)
            out[start:start + k] = np.frombuffer(buf, np.uint8).reshape(k, 3, s, s).transpose(0, 2, 3, 1)

    def close(self) -> None:
        self.stream.close()
        self.zip.close()


def _read_imagenet64(cfg: DataConfig) -> list[np.ndarray]:
    root = Path(cfg.path).expanduser()
    plan: list[tuple[_NpzRows, int]] = []  # headers first: open only the batches `limit` needs
    left = cfg.limit
    try:
        for path in _imagenet64_files(root):
            if left is not None and left <= 0:
                break
            rows = _NpzRows(path)
            take = rows.shape[0] if left is None else min(left, rows.shape[0])
            plan.append((rows, take))
            left = None if left is None else left - take
        sides = {rows.side for rows, _ in plan}
        if len(sides) > 1:
            raise UserError(f"data.path {root}: batches of different image sizes {sorted(sides)}")
        side = sides.pop()
        _check_fixed_side(side, cfg.patch_size, f"imagenet64 ({root})")
        out = np.empty((sum(t for _, t in plan), side, side, 3), np.uint8)
        at = 0
        for rows, take in plan:
            rows.read_into(out[at:at + take])
            at += take
    finally:
        for rows, _ in plan:
            rows.close()
    return list(out)


READERS: dict[str, Callable[[DataConfig], list[np.ndarray]]] = {
    "folder": _read_folder,
    "celeba": _read_celeba,
    "stl10": _read_stl10,
    "imagenet64": _read_imagenet64,
}

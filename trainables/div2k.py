"""The `div2k` data source: DIV2K / Flickr2K HR images, a checksum-checked download, and a decoded-image cache.

Layout under `data.path` (the official archives unpacked side by side):

    DIV2K_train_HR/0001.png ... 0800.png     training images
    DIV2K_valid_HR/0801.png ... 0900.png     validation images (used for validation when present)
    Flickr2K/Flickr2K_HR/000001.png ...      optional extra training images (or Flickr2K_HR/ directly)

Split: training = DIV2K_train_HR (+ Flickr2K), cut to `data.limit`; validation =
`data.val_images` images spread evenly over DIV2K_valid_HR. Without the valid folder the
training images are split by the rule every other source uses (`sources.val_indices`).

`data.download=true` fetches the missing DIV2K archives from the official server, checks
each against its published size and SHA-256 (as recorded in TensorFlow Datasets' checksum
list) and unpacks it. A truncated or wrong archive is a one-line error naming the file.

With `data.cache_decoded` (default on), each decoded image is kept as a .npy file in
`data.path/.srstudy-cache/` (or, where that folder is read-only, a per-folder cache under
~/.cache/srstudy/decoded/), named by the image's relative path, size and mtime; later trials
memory-map those files instead of decoding 2K PNGs again. An edited image gets a new name.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainables.config import DataConfig
from trainables.decoded_cache import write_atomic
from trainables.errors import UserError
from trainables.sources import IMAGE_EXTENSIONS, decode_image, map_threaded, split_by_rule

TRAIN_FOLDER = "DIV2K_train_HR"
VALID_FOLDER = "DIV2K_valid_HR"
FLICKR2K_FOLDERS = ("Flickr2K/Flickr2K_HR", "Flickr2K_HR")
CACHE_FOLDER = ".srstudy-cache"


@dataclass(frozen=True)
class Archive:
    """One official zip: where it lives, its published size and SHA-256, the folder it unpacks to."""

    url: str
    size: int
    sha256: str
    folder: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


ARCHIVES = {
    TRAIN_FOLDER: Archive("https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip", 3_530_603_713,
                          "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335", TRAIN_FOLDER),
    VALID_FOLDER: Archive("https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip", 448_993_893,
                          "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc", VALID_FOLDER),
}


def load_div2k(cfg: DataConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, val) uint8 (H, W, 3) RGB arrays from a DIV2K-layout folder (see the module docstring)."""
    root = Path(cfg.path).expanduser()
    if cfg.download:
        for archive in ARCHIVES.values():
            if not _images_in(root / archive.folder):
                fetch(archive, root)
    train_paths = _images_in(root / TRAIN_FOLDER)
    for sub in FLICKR2K_FOLDERS:
        train_paths += _images_in(root / sub)
    if not train_paths:
        raise UserError(f"data.path {root}: no images in {root / TRAIN_FOLDER} (the DIV2K layout: "
                        f"{TRAIN_FOLDER}/0001.png ..., {VALID_FOLDER}/0801.png ...); set data.download=true "
                        "on a machine with internet to fetch it")
    valid_paths = _images_in(root / VALID_FOLDER)
    train_paths = train_paths[: cfg.limit]
    if valid_paths:
        m = min(cfg.val_images, len(valid_paths))
        val_paths = [valid_paths[(2 * k + 1) * len(valid_paths) // (2 * m)] for k in range(m)]
    else:
        if len(train_paths) < 2:
            raise UserError(f"data.path {root}: found {len(train_paths)} image(s) and no {VALID_FOLDER}/; need at "
                            "least 2 (one to train on, one to validate)")
        train_paths, val_paths = split_by_rule(train_paths, cfg.val_images)
    cache = cache_folder(root) if cfg.cache_decoded else None
    return (decode_cached(train_paths, root, cache, cfg.patch_size),
            decode_cached(val_paths, root, cache, cfg.patch_size))


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


# ----------------------------------------------------------------------------- cache


def cache_folder(root: Path) -> Path:
    """`root/.srstudy-cache`, or a per-root folder under ~/.cache/srstudy/decoded when root is read-only."""
    here = root / CACHE_FOLDER
    try:
        here.mkdir(exist_ok=True)
        if os.access(here, os.W_OK):
            return here
    except OSError:
        pass
    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "srstudy" / "decoded" / digest
    base.mkdir(parents=True, exist_ok=True)
    return base


def cache_key(path: Path, root: Path) -> str:
    """A file name for the decoded `path`: its path under root, byte size and mtime, hashed."""
    st = path.stat()
    ident = f"{path.relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns}"
    return f"{path.stem}-{hashlib.sha1(ident.encode()).hexdigest()[:16]}.npy"


def _decode_one(path: Path, root: Path, cache: Path | None, patch_size: int) -> np.ndarray:
    if cache is None:
        return decode_image(path, patch_size)
    entry = cache / cache_key(path, root)
    if entry.is_file():
        try:
            arr = np.load(entry, mmap_mode="r")  # (H, W, 3) uint8, paged in on use
        except (OSError, ValueError):
            arr = None  # a damaged entry: decode again and replace it
        if arr is not None and arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8:
            if min(arr.shape[:2]) < patch_size:
                raise UserError(f"{path}: image is {arr.shape[1]}x{arr.shape[0]}, smaller than "
                                f"data.patch_size {patch_size}")
            return arr
    arr = decode_image(path, patch_size)
    try:  # trials that decode the same file at once never see half a file
        write_atomic(entry, lambda f: np.save(f, arr))
    except OSError:
        pass  # a full disk costs the cache entry, not the run
    return arr


def decode_cached(paths: list[Path], root: Path, cache: Path | None, patch_size: int) -> list[np.ndarray]:
    """Decode `paths` in order through the cache, a few threads at a time."""
    return map_threaded(lambda p: _decode_one(p, root, cache, patch_size), paths, serial_below=8)


# ----------------------------------------------------------------------------- download


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verify(path: Path, archive: Archive) -> None:
    """One-line UserError unless `path` has the archive's published size and SHA-256."""
    size = path.stat().st_size
    if size != archive.size:
        raise UserError(f"{path}: {size} bytes, the published archive has {archive.size} (a truncated or wrong "
                        "download; delete it and retry)")
    got = sha256_of(path)
    if got != archive.sha256:
        raise UserError(f"{path}: SHA-256 {got[:16]}... does not match the published {archive.sha256[:16]}... "
                        "(a corrupted or wrong download; delete it and retry)")


def extract(path: Path, root: Path) -> None:
    """Unpack a zip into root; a damaged zip is a one-line UserError."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()  # CRC of every member: catches damage inside a well-formed directory
            if bad is not None:
                raise zipfile.BadZipFile(f"member {bad} fails its CRC check")
            zf.extractall(root)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable zip archive ({' '.join(str(exc).split())[:160]})") from None


def fetch(archive: Archive, root: Path) -> None:
    """Download (unless a verified copy is there), verify and unpack one archive into root."""
    root.mkdir(parents=True, exist_ok=True)
    dest = root / archive.filename
    if not dest.is_file():
        part = dest.with_name(dest.name + ".part")
        print(f"downloading {archive.url} ({archive.size / 1e9:.2f} GB) to {dest}", flush=True)
        try:
            with urllib.request.urlopen(archive.url, timeout=60) as response, open(part, "wb") as f:
                shutil.copyfileobj(response, f, length=1 << 20)
        except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
            raise UserError(f"data.download: fetching {archive.url} into {root} failed "
                            f"({' '.join(str(exc).split())[:160]})") from None
        os.replace(part, dest)
    verify(dest, archive)
    extract(dest, root)

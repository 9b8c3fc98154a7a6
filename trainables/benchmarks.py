"""Test-set scores of a trial's selected generator on SR benchmark folders (config section `eval`).

At the end of a trial the generator of its best validation epoch (chosen on validation
patches, never on test images) is scored by the protocol of `trainables.evaluate` (modcrop,
antialiased bicubic LR on uint8 levels, Y channel, `scale`-pixel border crop) on every folder
of `eval.benchmarks` that exists, together with the bicubic baseline on the same images.
Metrics, `<set>` being the folder name lowercased with anything but a-z0-9 as `_`:

    test_<set>_psnr, test_<set>_ssim, test_<set>_hf          the selected generator
    test_<set>_bicubic_psnr, _bicubic_ssim, _bicubic_hf      bicubic on the same images
    test_<set>_images, test_<set>_images_total               images scored / in the folder
    test_epoch, eval_time_s                                  the epoch scored; seconds spent

`eval.max_pixels` bounds the HR pixels scored per set: a larger set is scored on the largest
evenly spaced subset of its images (name order) that fits, so a trial's scoring cost stays
small next to its training; `test_<set>_images` says how many were scored.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn

from trainables import degrade as _degrade
from trainables import evaluate as _evaluate
from trainables import metrics as _metrics
from trainables.config import TrialConfig
from trainables.decoded_cache import write_atomic
from trainables.errors import UserError
from trainables.evaluate import (UpscaleFn, benchmark_root, evaluate_folder, generator_upscaler, list_images,
                                 mean_scores, method_upscaler)
from trainables.models import build_generator

# metric suffix -> key of evaluate.mean_scores
SCORES = {"psnr": "psnr", "ssim": "ssim", "hf": "hf_energy_ratio"}
# bicubic's scores depend on the images and the scale alone: every trial of a study on this machine shares them
BICUBIC_CACHE = Path(tempfile.gettempdir()) / "srstudy-bicubic-scores"
# a change to the protocol's code (metrics, degradation, image loading) invalidates cached scores
_PROTOCOL_CODE = hashlib.sha1(b"".join(Path(m.__file__).read_bytes() for m in (_metrics, _degrade, _evaluate))).hexdigest()


def set_key(name: str) -> str:
    """`Set5` -> `set5`, `/data/My Set-2` -> `my_set_2`: the `<set>` of `test_<set>_psnr`."""
    return re.sub(r"[^a-z0-9]", "_", Path(name).name.lower())


def find_sets(names: Sequence[str]) -> list[tuple[str, Path]]:
    """(key, folder) for each entry of `eval.benchmarks` whose folder exists, in the given order.

    A name is looked up under `benchmark_root()` ($SR_BENCHMARKS, or ../shared/data/sr-benchmarks
    beside the project); an absolute path is used as it is. Missing folders are skipped: the
    default list names sets a machine may not have.
    """
    root = benchmark_root()
    found: list[tuple[str, Path]] = []
    for name in names:
        path = Path(name).expanduser()
        folder = path if path.is_absolute() else (root / name if root is not None else None)
        key = set_key(name)
        if folder is not None and folder.is_dir() and key not in {k for k, _ in found}:
            found.append((key, folder))
    return found


def select_images(paths: Sequence[Path], max_pixels: int | None) -> list[Path]:
    """The images to score: all of them within budget, else the largest evenly spaced subset that fits.

    Deterministic (name order, centred strides: image floor((i + 0.5) * N / n) of N for i < n);
    if no single image fits, the smallest one.
    """
    paths = list(paths)
    if max_pixels is None:
        return paths
    pixels = []
    for p in paths:
        try:
            with Image.open(p) as im:  # reads the header only
                pixels.append(im.size[0] * im.size[1])
        except (OSError, SyntaxError, ValueError) as exc:
            raise UserError(f"{p}: not a readable image ({type(exc).__name__})") from None
    n_all = len(paths)
    for n in range(n_all, 0, -1):
        picks = [int((i + 0.5) * n_all / n) for i in range(n)]
        if sum(pixels[i] for i in picks) <= max_pixels:
            return [paths[i] for i in picks]
    return [paths[min(range(n_all), key=pixels.__getitem__)]]


def selected_generator(cfg: TrialConfig, weights: Mapping[str, Tensor], device: torch.device) -> nn.Module:
    """A fresh eager generator holding `weights`, in eval mode on `device`."""
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the run's RNG untouched
        generator = build_generator(cfg)
    generator.load_state_dict(weights)
    return generator.to(device).eval()


def bicubic_scores(folder: Path, images: Sequence[Path], scale: int) -> dict[str, float]:
    """Mean bicubic scores of `images`, cached on disk by (protocol code, file paths, sizes, mtimes, scale)."""
    ident = [_PROTOCOL_CODE, scale] + [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in images]
    cache = BICUBIC_CACHE / (hashlib.sha1(json.dumps(ident).encode()).hexdigest()[:20] + ".json")
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    scores = mean_scores(evaluate_folder(folder, scale, method_upscaler("bicubic", scale), images))
    try:  # best effort: a read-only temp folder only costs the recomputation
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, lambda f: f.write(json.dumps(scores).encode()))
    except OSError:
        pass
    return scores


def _on_device(generator: nn.Module, device: torch.device) -> UpscaleFn:
    upscale = generator_upscaler(generator)
    return lambda lr01: upscale(lr01.to(device)).cpu()  # (1, C, H, W) in [0, 1] back on the CPU for scoring


def score_benchmarks(cfg: TrialConfig, weights: Mapping[str, Tensor] | None, epoch: int, device: torch.device,
                     progress: Callable[[str], None] | None = None) -> dict[str, float]:
    """The test metrics of the generator `weights` (epoch `epoch`); {} when there is nothing to score.

    Nothing is scored for video generators (data.frames > 1 needs neighbouring frames), without
    weights (no epoch was validated), or when no folder of `eval.benchmarks` exists. A set whose
    images cannot be scored is skipped with a note, so a finished trial is never lost to it.
    """
    say = progress or (lambda _: None)
    sets = find_sets(cfg.eval.benchmarks)
    if weights is None or cfg.data.frames > 1 or not sets:
        return {}
    start = time.perf_counter()
    upscale = _on_device(selected_generator(cfg, weights, device), device)
    metrics: dict[str, float] = {}
    for key, folder in sets:
        try:
            paths = list_images(folder)
            chosen = select_images(paths, cfg.eval.max_pixels)
            sr = mean_scores(evaluate_folder(folder, cfg.scale, upscale, chosen))
            ref = bicubic_scores(folder, chosen, cfg.scale)
        except UserError as exc:
            say(f"  test set {folder} skipped: {exc}")
            continue
        for name, src in SCORES.items():
            metrics[f"test_{key}_{name}"] = sr[src]
            metrics[f"test_{key}_bicubic_{name}"] = ref[src]
        metrics[f"test_{key}_images"] = len(chosen)
        metrics[f"test_{key}_images_total"] = len(paths)
    if metrics:
        metrics["test_epoch"] = epoch
        metrics["eval_time_s"] = time.perf_counter() - start
    return metrics

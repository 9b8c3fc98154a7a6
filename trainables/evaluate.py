"""Score an upscaler on a folder of HR images by the SR benchmark protocol (CLI: python -m trainables.evaluate).

    python -m trainables.evaluate --data $SR_BENCHMARKS/Set5 --scale 2 --method bicubic [--json]
    python -m trainables.evaluate --data $SR_BENCHMARKS/Set5 --checkpoint runs/x/checkpoints/epoch_0006

Per image: modcrop the HR, LR = `bicubic_down` (uint8 levels), SR = the upscaler,
round to uint8, then Y-channel PSNR / SSIM and the high-band energy ratio (metrics.py).
The benchmark images live outside the repository: the folder holding Set5/ and Set14/
is `$SR_BENCHMARKS`, or `../shared/data/sr-benchmarks` next to the project root.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from trainables import checkpoint
from trainables.config import TrialConfig
from trainables.degrade import bicubic_down, bicubic_up, model_to_01, modcrop, nearest_up, to_float01, to_uint8
from trainables.errors import ArgumentParser, UserError, first_line, one_line_errors
from trainables.models import build_generator
from trainables.metrics import METRIC_NAMES, SSIM_WINDOW, score_pair
from trainables.sources import IMAGE_EXTENSIONS, read_image

# lr01 (1, C, h, w) in [0, 1] -> sr01 (1, C, h*scale, w*scale) in [0, 1]. C is 1 for gray
# images: an upscaler that needs RGB (a generator) replicates and reduces channels itself.
UpscaleFn = Callable[[Tensor], Tensor]

SCALES = (2, 3, 4)
METHODS: dict[str, Callable[[Tensor, int], Tensor]] = {"bicubic": bicubic_up, "nearest": nearest_up}
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def benchmark_root() -> Path | None:
    """The folder holding Set5/ and Set14/: $SR_BENCHMARKS if set (even if missing, so a
    typo shows up as a missing folder), else ../shared/data/sr-benchmarks beside the
    project root when it exists, else None."""
    env = os.environ.get("SR_BENCHMARKS")
    if env:
        return Path(env).expanduser()
    default = PROJECT_ROOT.parent / "shared" / "data" / "sr-benchmarks"
    return default if default.is_dir() else None


def method_upscaler(method: str, scale: int) -> UpscaleFn:
    """A named classical upscaler (METHODS) as an UpscaleFn for `evaluate_folder`."""
    if method not in METHODS:
        raise UserError(f"--method {method}: unknown (accepted: {', '.join(METHODS)})")
    return functools.partial(METHODS[method], scale=scale)


# what a checkpoint's state must hold: to score its generator, and to resume training from it
GENERATOR_KEYS = ("generator",)
RESUME_KEYS = ("generator", "discriminator", "opt_pre", "opt_g", "opt_d", "epoch")


def read_checkpoint(folder: str | Path, flag: str, need: Sequence[str] = GENERATOR_KEYS,
                    map_location: str | torch.device = "cpu") -> tuple[TrialConfig, dict]:
    """`checkpoint.load` for a path a person gave: whatever is wrong with it is one UserError naming `flag`.

    A state file of text or random bytes, a bare tensor, a state without the generator, a
    config.yaml that is empty, a list or invalid: each is a bad input, not a crash.
    """
    try:
        cfg, state = checkpoint.load(folder, map_location=map_location)
    except UserError as exc:
        raise UserError(f"{flag}: {exc}") from None
    except Exception as exc:  # unpickling errors, YAML errors, schema errors of an old format
        raise UserError(f"{flag} {folder}: unreadable checkpoint ({type(exc).__name__}: {first_line(exc, 160)}); "
                        "pass a checkpoint folder written by trainables.train") from None
    missing = [k for k in need if not isinstance(state, dict) or k not in state]
    if missing:
        got = f"a {type(state).__name__}" if not isinstance(state, dict) else f"keys {', '.join(map(str, state)) or 'none'}"
        raise UserError(f"{flag} {folder}: not a trainables.train checkpoint (its state is {got}; missing "
                        f"{', '.join(missing)})")
    return cfg, state


def load_generator(folder: Path) -> tuple[TrialConfig, torch.nn.Module]:
    """The generator of a checkpoint folder, in eval mode on the CPU, with its config."""
    cfg, state = read_checkpoint(folder, "--checkpoint")
    if cfg.data.frames > 1:
        raise UserError(f"{folder}: a video generator (data.frames {cfg.data.frames}) needs {cfg.data.frames} "
                        "neighbouring frames per image; trainables.evaluate scores single images")
    generator = build_generator(cfg)
    try:
        generator.load_state_dict(state["generator"])
    except (RuntimeError, TypeError, AttributeError) as exc:  # weights of another model size than config.yaml says
        raise UserError(f"--checkpoint {folder}: its generator weights do not fit the model its config.yaml "
                        f"describes ({str(exc).splitlines()[-1].strip()[:120] or type(exc).__name__})") from None
    return cfg, generator.eval()


def generator_upscaler(generator: torch.nn.Module) -> UpscaleFn:
    """LR (1, C, h, w) in [0, 1] -> SR (1, C, h*s, w*s) in [0, 1]; gray images go through as RGB."""

    @torch.no_grad()
    def upscale(lr01: Tensor) -> Tensor:
        gray = lr01.shape[1] == 1
        x = lr01.expand(-1, 3, -1, -1) if gray else lr01
        sr01 = model_to_01(generator(x))  # (1, 3, H, W)
        return sr01.mean(dim=1, keepdim=True) if gray else sr01

    return upscale


def list_images(folder: Path, where: str | None = None) -> list[Path]:
    """The image files directly in `folder`, sorted by name; `where` names the folder in errors."""
    where = where or str(folder)
    kinds = "/".join(s.lstrip(".") for s in IMAGE_EXTENSIONS)
    if not folder.is_dir():
        raise UserError(f"{where}: no such folder (give a folder of {kinds} images)")
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise UserError(f"{where}: no images in this folder (accepted: {kinds}; subfolders are not searched)")
    return images


def load_image(path: Path) -> Tensor:
    """An image file -> (1, C, H, W) uint8: C = 1 for gray (L, 1, LA, 16-bit scaled to 8), else 3 (RGB; alpha dropped)."""
    arr = read_image(path)  # (H, W) or (H, W, 3)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0)  # (1, C, H, W)


def evaluate_folder(folder: str | Path, scale: int, upscale_fn: UpscaleFn,
                    images: Sequence[Path] | None = None) -> list[dict]:
    """Score `upscale_fn` on every image in `folder` (or only on `images`); one dict per image, in name order.

    Each dict: image (file name), width, height (after modcrop), channels, and every
    metric in metrics.METRIC_NAMES (psnr, ssim, hf_energy_ratio, hf_error_ratio).
    Raises UserError for a bad scale, folder or image.
    """
    if scale not in SCALES:
        raise UserError(f"scale {scale}: not supported for evaluation (accepted: {', '.join(map(str, SCALES))})")
    min_side = 2 * scale + SSIM_WINDOW  # border crop on both sides, then one SSIM window
    rows = []
    for path in list_images(Path(folder)) if images is None else images:
        hr = modcrop(load_image(path), scale)  # (1, C, H, W) uint8, H and W multiples of scale
        _, c, h, w = hr.shape
        if min(h, w) < min_side:
            raise UserError(f"{path}: {w}x{h} px is too small for scale {scale} (need at least {min_side} px a side)")
        lr01 = bicubic_down(to_float01(hr), scale)  # (1, C, H/s, W/s) on uint8 levels
        with torch.inference_mode():
            sr01 = upscale_fn(lr01)
        if sr01.shape != hr.shape:
            raise ValueError(f"upscale_fn returned {tuple(sr01.shape)} for {path.name}, expected {tuple(hr.shape)}")
        sr = to_uint8(sr01.cpu())  # the protocol scores uint8 SR
        rows.append({"image": path.name, "width": w, "height": h, "channels": c, **score_pair(sr, hr, scale)})
    return rows


def mean_scores(rows: Sequence[dict]) -> dict[str, float]:
    """Arithmetic mean of each metric over images (how the published tables average)."""
    return {name: sum(r[name] for r in rows) / len(rows) for name in METRIC_NAMES}


def format_table(rows: Sequence[dict], mean: dict[str, float]) -> str:
    """An aligned text table: image, size, PSNR, SSIM, HF, then the mean row."""
    name_w = max(len("image"), len(f"mean ({len(rows)})"), *(len(r["image"]) for r in rows))
    line = f"{{:<{name_w}}}  {{:>9}}  {{:>7}}  {{:>6}}  {{:>6}}"
    out = [line.format("image", "size", "PSNR", "SSIM", "HF")]
    for r in rows:
        size = f"{r['width']}x{r['height']}"
        out.append(line.format(r["image"], size, f"{r['psnr']:.2f}", f"{r['ssim']:.4f}", f"{r['hf_energy_ratio']:.3f}"))
    out.append("-" * len(out[0]))
    out.append(line.format(f"mean ({len(rows)})", "", f"{mean['psnr']:.2f}", f"{mean['ssim']:.4f}", f"{mean['hf_energy_ratio']:.3f}"))
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m trainables.evaluate",
        description="Y-channel PSNR/SSIM (SR benchmark protocol) and high-band energy ratio of an upscaler.",
    )
    p.add_argument("--data", type=Path, default=None,
                   help="folder of HR images (default: $SR_BENCHMARKS/Set5, SR_BENCHMARKS defaulting to "
                        "../shared/data/sr-benchmarks beside the project root)")
    p.add_argument("--scale", type=int, default=None,
                   help="upscaling factor: 2, 3 or 4 (default: the checkpoint's scale; required without one)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="a checkpoint folder written by trainables.train: score its generator instead of --method")
    p.add_argument("--method", default="bicubic", help=f"classical upscaler: {', '.join(METHODS)} (default bicubic)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p


def _run(argv: Sequence[str] | None) -> None:
    args = build_parser().parse_args(argv)
    if args.data is None:
        root = benchmark_root()
        if root is None:
            raise UserError("--data not given and no benchmark folder found "
                            "(pass --data DIR, or set SR_BENCHMARKS to the folder holding Set5/ and Set14/)")
        args.data = root / "Set5"
    generator_cfg = None
    if args.checkpoint is not None:
        generator_cfg, generator = load_generator(args.checkpoint)
        if args.scale is None:
            args.scale = generator_cfg.scale
        if args.scale != generator_cfg.scale:
            raise UserError(f"--scale {args.scale}: the checkpoint {args.checkpoint} was trained for "
                            f"x{generator_cfg.scale}; pass --scale {generator_cfg.scale} or omit it")
        args.method = f"generator ({args.checkpoint})"
    if args.scale is None:
        raise UserError("--scale is required without --checkpoint (accepted: 2, 3, 4)")
    if args.scale not in SCALES:
        raise UserError(f"--scale {args.scale}: not supported for evaluation (accepted: {', '.join(map(str, SCALES))})")
    list_images(args.data, where=f"--data {args.data}")  # check the folder here so errors name the flag
    upscale_fn = method_upscaler(args.method, args.scale) if generator_cfg is None else generator_upscaler(generator)
    rows = evaluate_folder(args.data, args.scale, upscale_fn)
    mean = mean_scores(rows)
    if args.json:
        print(json.dumps({"scale": args.scale, "method": args.method, "data": str(args.data),
                          "images": rows, "mean": mean}))
        return
    print(f"{args.data} x{args.scale}, method {args.method}: Y-channel PSNR (dB) and SSIM after a "
          f"{args.scale} px border crop; HF = high-band energy of SR / HR (1 = HR's detail level)")
    print(format_table(rows, mean))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; a user's mistake prints one line on stderr and returns 2."""
    return one_line_errors(lambda: _run(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())

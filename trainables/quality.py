"""A quality benchmark: train the PSNR-oriented generator for a CPU-time budget, then score it on the SR benchmarks.

    python -m trainables.quality --minutes 30 --source builtin [--set key=value ...]

It trains G on the pixel loss alone (`schedule.gan_epochs` 0) for as many epochs as fit in
`--minutes`, then prints Y-PSNR / SSIM (the protocol of trainables/evaluate.py) on Set5,
Set14 and BSD100 wherever those folders exist under $SR_BENCHMARKS, with bicubic beside them.

How a schedule knows its length: the first epoch runs alone and is timed; the number of
epochs that fit the budget is then fixed, and training resumes from the first epoch's
checkpoint with `schedule.pretrain_epochs` set to that number. Epoch 0's rate does not
depend on the phase's length (trainables/schedules.py), so the result is the run that
would have been started with that length. Should the machine slow down so that the
budget runs out early, training stops at the end of the epoch that used it up.

`--clock cpu` (the default) counts the process's CPU time divided by torch's thread count:
on a quiet machine that is the wall-clock time, and on a machine shared with other jobs it
is the time this run would have taken alone. `--clock wall` counts wall-clock time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from trainables.config import TrialConfig, load_config, validate
from trainables.errors import UserError
from trainables.evaluate import (benchmark_root, evaluate_folder, generator_upscaler, load_generator,
                                 mean_scores, method_upscaler)
from trainables.train import train
from trainables.yamlio import parse_set_args

BENCHMARK_SETS = ("Set5", "Set14", "BSD100")
FIXED_KEYS = ("schedule.pretrain_epochs", "schedule.gan_epochs")  # set by the budget, not by --set


class BudgetUsed(Exception):
    """Raised from the report callback when an epoch ends past the budget."""


def make_clock(kind: str) -> Callable[[], float]:
    """Seconds on the chosen clock: process CPU time per torch thread, or wall-clock time."""
    if kind == "wall":
        return time.perf_counter
    threads = max(torch.get_num_threads(), 1)
    return lambda: time.process_time() / threads


def benchmark_config(source: str, path: str | None, overrides: dict[str, Any]) -> TrialConfig:
    """The trial config of the first (timed) epoch: pixel-loss pretraining only."""
    fixed = [k for k in FIXED_KEYS if k in overrides]
    if fixed:
        raise UserError(f"--set {fixed[0]}: the benchmark sets the epochs itself (pretraining sized to "
                        "--minutes, no GAN phase); leave it out")
    base = {"data.source": source, "schedule.pretrain_epochs": 1, "schedule.gan_epochs": 0}
    if path is not None:
        base["data.path"] = path
    return load_config(overrides={**base, **overrides})


def with_epochs(cfg: TrialConfig, epochs: int) -> TrialConfig:
    return validate(dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, pretrain_epochs=epochs)))


def run_budget(cfg: TrialConfig, minutes: float, clock: Callable[[], float], out: Path,
               say: Callable[[str], None] = print) -> dict[str, Any]:
    """Train within the budget; returns {epochs, planned_epochs, used_s, wall_s, final metrics, checkpoint}."""
    budget = 60.0 * minutes
    start, wall0 = clock(), time.perf_counter()
    history: list[dict[str, Any]] = []

    def report(metrics: dict[str, Any], ckpt: str | None) -> None:
        used = clock() - start
        history.append({**metrics, "used_s": used, "checkpoint": ckpt})
        rate = metrics.get("lr_pretrain_now", float("nan"))
        say(f"epoch {metrics['epoch']:3d}  loss_pixel {metrics['loss_pixel']:.5f}  lr {rate:.2e}  "
            f"val PSNR {metrics.get('val_psnr', float('nan')):.2f} dB  [{used / 60:.1f} / {minutes:g} min]")
        if used >= budget and metrics["status"] == "running":
            raise BudgetUsed

    train(cfg, report=report, out_dir=out)
    first = history[0]["used_s"]  # the first epoch with the setup: a slight over-estimate, on the safe side
    planned = 1 + max(int(math.floor((budget - first) / max(first, 1e-9))), 0)
    say(f"first epoch took {first:.1f} s on the {'wall' if clock is time.perf_counter else 'CPU'} clock: "
        f"{planned} epochs fit {minutes:g} min")
    if planned > 1:
        try:
            train(with_epochs(cfg, planned), report=report, out_dir=out,
                  resume_from=history[0]["checkpoint"])
        except BudgetUsed:
            say(f"budget used after epoch {history[-1]['epoch']} of {planned}")
    last = history[-1]
    return {"epochs": last["epoch"], "planned_epochs": planned, "used_s": last["used_s"],
            "wall_s": time.perf_counter() - wall0, "final": last, "checkpoint": last["checkpoint"]}


def score_benchmarks(checkpoint_dir: str | Path, root: Path | None) -> dict[str, dict[str, float]]:
    """{set: {psnr, ssim, bicubic_psnr, bicubic_ssim}} for each of BENCHMARK_SETS found under `root`."""
    if root is None:
        return {}
    cfg, generator = load_generator(Path(checkpoint_dir))
    out: dict[str, dict[str, float]] = {}
    for name in BENCHMARK_SETS:
        folder = root / name
        if not folder.is_dir():
            continue
        sr = mean_scores(evaluate_folder(folder, cfg.scale, generator_upscaler(generator)))
        bic = mean_scores(evaluate_folder(folder, cfg.scale, method_upscaler("bicubic", cfg.scale)))
        out[name] = {"psnr": sr["psnr"], "ssim": sr["ssim"], "bicubic_psnr": bic["psnr"], "bicubic_ssim": bic["ssim"]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainables.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True, help="training budget in minutes (see --clock)")
    parser.add_argument("--source", default="builtin", help="data.source to train on (default builtin)")
    parser.add_argument("--path", default=None, help="data.path, for sources that read a folder or file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one trial-config value, e.g. --set optim.schedule=cosine (repeatable)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: process CPU time / torch threads (default); wall: wall-clock time")
    parser.add_argument("--out", default=None, help="output folder (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="also print one JSON line with every number")
    args = parser.parse_args(argv)
    try:
        if args.minutes <= 0:
            raise UserError(f"--minutes {args.minutes:g}: expected a positive budget")
        cfg = benchmark_config(args.source, args.path, parse_set_args(args.overrides))
        root = benchmark_root()
        if root is None or not any((root / s).is_dir() for s in BENCHMARK_SETS):
            raise UserError(f"no benchmark folder ({', '.join(BENCHMARK_SETS)}) found: set SR_BENCHMARKS to the "
                            "folder that holds them")
        out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="srstudy-quality-"))
        print(f"quality benchmark: {args.minutes:g} min ({args.clock} clock), source {args.source}, "
              f"G {cfg.model.g_channels} ch x {cfg.model.g_blocks} blocks, loss.pixel {cfg.loss.pixel}, "
              f"optim.schedule {cfg.optim.schedule}, optim.ema_decay {cfg.optim.ema_decay:g}, "
              f"{torch.get_num_threads()} threads; output {out}", flush=True)
        run = run_budget(cfg, args.minutes, make_clock(args.clock), out, say=lambda s: print(s, flush=True))
        scores = score_benchmarks(run["checkpoint"], root)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"\n{run['epochs']} epochs in {run['used_s'] / 60:.1f} min ({args.clock} clock), "
          f"{run['wall_s'] / 60:.1f} min wall; x{cfg.scale}, Y-channel, {cfg.scale} px border crop")
    print(f"{'set':8} {'PSNR':>7} {'SSIM':>7}   {'bicubic':>7} {'SSIM':>7}")
    for name, s in scores.items():
        print(f"{name:8} {s['psnr']:7.2f} {s['ssim']:7.4f}   {s['bicubic_psnr']:7.2f} {s['bicubic_ssim']:7.4f}")
    if args.json:
        print(json.dumps({"minutes": args.minutes, "clock": args.clock, "overrides": args.overrides,
                          "epochs": run["epochs"], "planned_epochs": run["planned_epochs"],
                          "used_s": run["used_s"], "wall_s": run["wall_s"],
                          "val_psnr": run["final"].get("val_psnr"), "scores": scores}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Trainer throughput against a bare PyTorch loop of the same G, D and losses (CLI: python -m trainables.bench).

    python -m trainables.bench                       # default small CPU size, both phases
    python -m trainables.bench --channels 64 --blocks 8 --d-channels 32 --steps 20
    python -m trainables.bench --paper-size --device cuda --precision bf16 --compile max-autotune

"trainer" is `Trainer.run_epoch` itself on the real DataLoader (patch cutting, collation,
degradation, loss bookkeeping, divergence checks included); "bare" is the least a
hand-written loop must do: it takes pre-cut uint8 HR batches, makes LR with
`bicubic_down` and calls the trainer's own `pretrain_step` / `gan_step` (so the same
updates, losses, precision and compile mode), with nothing around them. Runs alternate (trainer, bare,
trainer, ...) after one untimed warm-up of each, so load from other processes hits both
alike; the table gives medians. A ratio (trainer / bare images/s) near 1 means the
trainer adds no overhead worth removing. FLOPs per image are counted once per mode
(torch.utils.flop_counter, one eager bare step); TFLOP/s is that times the trainer's images/s.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from typing import Any, Callable, Mapping, Sequence

import torch

from trainables.config import VIDEO_SOURCES, TrialConfig, load_config
from trainables.data import TrainPatches, load_images, make_loader
from trainables.degrade import bicubic_down, hr_to_model, to_float01
from trainables.distributed import DistInfo
from trainables.errors import UserError
from trainables.trainer import Trainer
from trainables.yamlio import parse_set_args

MODES = ("gan", "pretrain")
# --paper-size: the paper's G (64 ch x 16 blocks) and D (64 / 1024), batch 64, 32x32 LR patches
PAPER_SIZE = {"model.g_channels": 64, "model.g_blocks": 16, "model.d_channels": 64, "model.d_dense": 1024,
              "schedule.batch_size": 64}


def bare_run(trainer: Trainer, batches: Sequence[torch.Tensor], mode: str) -> None:
    """The reference loop: the trainer's own step functions on pre-cut batches, nothing around them."""
    step = trainer.pretrain_step if mode == "pretrain" else trainer.gan_step
    for batch in batches:  # (B, 3, P, P) uint8
        hr01 = to_float01(batch.to(trainer.device))
        step(bicubic_down(hr01, trainer.cfg.scale), hr_to_model(hr01))
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)


def bench_config(overrides: Mapping[str, Any], steps: int) -> TrialConfig:
    """The default config with `overrides`, one epoch of each phase, `steps` batches each."""
    probe = load_config(overrides=overrides)
    return load_config(overrides={**overrides, "schedule.pretrain_epochs": 1, "schedule.gan_epochs": 1,
                                  "schedule.patches_per_epoch": steps * probe.schedule.batch_size})


def run_bench(cfg: TrialConfig, modes: Sequence[str] = MODES, repeats: int = 5,
              progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Images/s of `Trainer.run_epoch` and of `bare_run` per mode, alternating runs.

    One epoch of `cfg` (schedule.patches_per_epoch patches) is one timed run. Returns one
    dict per mode: mode, trainer and bare (median images/s), ratio, and the raw runs.
    """
    if cfg.data.source in VIDEO_SOURCES:
        raise UserError(f"data.source {cfg.data.source!r}: the benchmark runs on image sources only")
    for mode in modes:
        if mode not in MODES:
            raise UserError(f"mode {mode!r}: unknown (accepted: {', '.join(MODES)})")
    threads = torch.get_num_threads()
    if cfg.runtime.threads is not None:
        torch.set_num_threads(cfg.runtime.threads)
    try:
        return _run(cfg, modes, repeats, progress)
    finally:
        torch.set_num_threads(threads)  # leave the caller's setting as it was


def _run(cfg: TrialConfig, modes: Sequence[str], repeats: int,
         progress: Callable[[str], None] | None) -> list[dict[str, Any]]:
    if cfg.runtime.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: torch sees no CUDA device here")
    device = torch.device("cuda" if cfg.runtime.device != "cpu" and torch.cuda.is_available() else "cpu")
    train_images, _ = load_images(cfg.data)
    dataset = TrainPatches(train_images, cfg.data.patch_size, cfg.data.crop, cfg.data.augment,
                           length=cfg.schedule.patches_per_epoch, seed=cfg.seed)
    if cfg.data.num_workers == 0:  # as `train`: batches are cut on (or copied to) the device
        dataset.place(device, cfg.data.device_cache_mb)
    loader = make_loader(dataset, cfg.schedule.batch_size, cfg.data.num_workers, seed=cfg.seed)
    trainer = Trainer(cfg, DistInfo(0, 1, 0), device)
    bare = Trainer(cfg, DistInfo(0, 1, 0), device)  # its own models and optimisers, the same initial weights
    images = (cfg.schedule.patches_per_epoch // cfg.schedule.batch_size) * cfg.schedule.batch_size
    epochs = {"pretrain": 0, "gan": cfg.schedule.pretrain_epochs}  # the trainer's epoch index per mode

    def cut(mode: str) -> list[torch.Tensor]:
        """The bare loop's input: the very patches the trainer's epoch sees, cut and batched beforehand."""
        dataset.set_epoch(epochs[mode])
        return [batch.clone() for batch in loader]  # (B, 3, P, P) uint8 each

    def timed(run: Callable[[], Any]) -> tuple[float, float]:
        """(images per wall second, images per CPU second of this process, all threads)."""
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        return images / (time.perf_counter() - wall), images / max(time.process_time() - cpu, 1e-9)

    def run_trainer(mode: str) -> None:
        trainer.epoch = epochs[mode]
        trainer.run_epoch(loader, dataset, None)  # returns after its own end-of-epoch sync

    results = []
    for mode in modes:
        batches = cut(mode)
        loops = {"trainer": lambda: run_trainer(mode), "bare": lambda: bare_run(bare, batches, mode)}
        for run in loops.values():  # warm-up: allocator, oneDNN kernels, page cache
            run()
        runs: dict[str, list[tuple[float, float]]] = {"trainer": [], "bare": []}
        for r in range(repeats):
            for name, run in loops.items():  # alternate, so changing load hits both alike
                runs[name].append(timed(run))
            if progress is not None:
                progress(f"  {mode} run {r + 1}/{repeats}: trainer {runs['trainer'][-1][0]:.1f} img/s, "
                         f"bare {runs['bare'][-1][0]:.1f} img/s")
        flops = count_flops(cfg, device, mode, batches[0])
        wall = {k: [w for w, _ in v] for k, v in runs.items()}
        cpu = {k: [c for _, c in v] for k, v in runs.items()}
        t, b = statistics.median(wall["trainer"]), statistics.median(wall["bare"])
        results.append({
            "mode": mode, "trainer": t, "bare": b, "ratio": t / b,
            # the per-pair ratio cancels load that changes between pairs
            "pair_ratio": statistics.median(x / y for x, y in zip(wall["trainer"], wall["bare"])),
            # work per image, blind to time spent waiting for a core: steadiest on a shared machine
            "cpu_ratio": statistics.median(cpu["trainer"]) / statistics.median(cpu["bare"]),
            "trainer_runs": wall["trainer"], "bare_runs": wall["bare"],
            "gflop_per_image": flops / 1e9, "tflops": flops * t / 1e12,
        })
    return results


def count_flops(cfg: TrialConfig, device: torch.device, mode: str, batch: torch.Tensor) -> float:
    """FLOPs per image of one step of `mode` (G forward and backward, D's steps), counted on an eager,
    fp32 trainer driven by the bare loop (compiled kernels do the same arithmetic, fused)."""
    from torch.utils.flop_counter import FlopCounterMode

    eager = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, compile="none", precision="fp32"))
    trainer = Trainer(eager, DistInfo(0, 1, 0), device)
    counter = FlopCounterMode(display=False)
    with counter:
        bare_run(trainer, [batch], mode)
    return counter.get_total_flops() / batch.shape[0]


def format_table(results: Sequence[dict[str, Any]]) -> str:
    line = "{:<9} {:>16} {:>13} {:>7} {:>11} {:>10} {:>10} {:>9}"
    out = [line.format("mode", "trainer img/s", "bare img/s", "ratio", "pair ratio", "CPU ratio", "GFLOP/img",
                       "TFLOP/s")]
    for r in results:
        out.append(line.format(r["mode"], f"{r['trainer']:.1f}", f"{r['bare']:.1f}", f"{r['ratio']:.3f}",
                               f"{r['pair_ratio']:.3f}", f"{r['cpu_ratio']:.3f}", f"{r['gflop_per_image']:.2f}",
                               f"{r['tflops']:.3f}"))
    return "\n".join(out)


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config overrides from the CLI: --paper-size first, then --set, then the explicit flags."""
    overrides = dict(PAPER_SIZE) if args.paper_size else {}
    overrides.update(parse_set_args(args.overrides))
    if args.paper_size:  # the paper's 32x32 LR input: HR 64 at x2, 128 at x4
        overrides.setdefault("data.patch_size", 32 * (args.scale or overrides.get("scale") or 2))
    for flag, key in (("channels", "model.g_channels"), ("blocks", "model.g_blocks"),
                      ("d_channels", "model.d_channels"), ("batch", "schedule.batch_size"),
                      ("threads", "runtime.threads"), ("device", "runtime.device"),
                      ("precision", "runtime.precision"), ("compile", "runtime.compile"), ("scale", "scale")):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    return overrides


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainables.bench", description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=None, help="generator width (default: model.g_channels)")
    p.add_argument("--blocks", type=int, default=None, help="generator residual blocks (default: model.g_blocks)")
    p.add_argument("--d-channels", type=int, default=None, help="discriminator width (default: model.d_channels)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: schedule.batch_size)")
    p.add_argument("--steps", type=int, default=30, help="batches per timed run (default 30)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each loop per mode (default 5)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated, from gan,pretrain (default both)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="default: runtime.device (auto)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None, help="default: runtime.precision (fp32)")
    p.add_argument("--compile", choices=("none", "default", "reduce-overhead", "max-autotune"), default=None,
                   help="torch.compile mode for G and D (default: runtime.compile, none)")
    p.add_argument("--scale", type=int, choices=(2, 4), default=None, help="upscaling factor (default: scale)")
    p.add_argument("--paper-size", action="store_true",
                   help="G 64 ch x 16 blocks, D 64 / 1024, batch 64, 32x32 LR patches (other flags still apply)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any other config value, e.g. --set loss.family=wgan_gp (repeatable)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.steps < 1 or args.repeats < 1:
            raise UserError("--steps and --repeats must be >= 1")
        cfg = bench_config(cli_overrides(args), args.steps)
        m, s = cfg.model, cfg.schedule
        print(f"G {m.g_channels} ch x {m.g_blocks} blocks, D {m.d_channels} ch, {cfg.loss.family}, "
              f"batch {s.batch_size}, patch {cfg.data.patch_size}, x{cfg.scale}, d_steps_per_g {s.d_steps_per_g}, "
              f"{args.steps} steps x {args.repeats} runs, torch threads {cfg.runtime.threads or torch.get_num_threads()}, "
              f"device {cfg.runtime.device}, {cfg.runtime.precision}, compile {cfg.runtime.compile}",
              flush=True)
        results = run_bench(cfg, [x.strip() for x in args.modes.split(",") if x.strip()], args.repeats,
                            progress=lambda s: print(s, flush=True))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n" + format_table(results))
    print("\nmedian images/s over the runs; ratio = trainer / bare of the medians; pair ratio = median of the\n"
          "per-pair ratios; CPU ratio = the same for images per CPU-second (target >= 0.97 for each);\n"
          "GFLOP/img = one step's FLOPs per image (G forward + backward, D steps); TFLOP/s = that x trainer img/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

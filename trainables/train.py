"""The GAN trainer: MSE pretraining of G, then alternating D and G steps; one function, `train`.

The trainer does not know who launched it: rank and world size come from
torch.distributed, results leave through the `report(metrics, checkpoint_dir)` callable.
`python -m trainables.train [CONFIG.yaml] [--set key=value ...]` runs it alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from trainables import checkpoint
from trainables.config import VIDEO_SOURCES, TrialConfig, dump_yaml, load_config
from trainables.data import EpochDataset, TrainPatches, load_images, make_loader, val_patches
from trainables.distributed import broadcast, dist_info, pick_device
from trainables.errors import ArgumentParser, UserError, check_writable_dir
from trainables.grids import save_grid
from trainables.validation import Validator
from trainables.benchmarks import score_benchmarks
from trainables.stability import gan_stability
from trainables.trainer import Trainer
from trainables.video import video_data
from trainables.yamlio import parse_set_args

Report = Callable[[dict[str, Any], "str | None"], None]


def trial_data(cfg: TrialConfig) -> tuple[EpochDataset, Tensor, Tensor | None]:
    """The training set, the validation HR batch (N, T*3, P, P) uint8 and the val_tc pairs (video only)."""
    if cfg.data.source in VIDEO_SOURCES:  # clips: windows of data.frames frames, val_tc pairs
        return video_data(cfg)
    train_images, val_images = load_images(cfg.data)
    dataset = TrainPatches(train_images, cfg.data.patch_size, cfg.data.crop, cfg.data.augment,
                           length=cfg.schedule.patches_per_epoch, seed=cfg.seed)
    del train_images  # the dataset's bank holds the pixels now
    return dataset, val_patches(val_images, cfg.data.patch_size, cfg.data.val_patches_per_image), None


def train(cfg: TrialConfig, report: Report | None = None, out_dir: str | Path | None = None,
          resume_from: str | Path | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train one model; call `report(metrics, checkpoint_dir)` after every epoch.

    `metrics` are the same on every rank; `checkpoint_dir` is a folder on rank 0 and
    None elsewhere. Returns the last epoch's metrics, whose `status` is `completed` or
    `diverged` (NaN/inf losses end the run; they are not an exception).
    """
    info = dist_info()
    if cfg.runtime.threads is not None:
        torch.set_num_threads(cfg.runtime.threads)
    device = pick_device(cfg.runtime.device, info)
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="srstudy-"))
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)

    dataset, val_hr, tc_pairs = trial_data(cfg)
    if cfg.data.num_workers == 0:  # batches are cut on (or copied to) the training device
        dataset.place(device, cfg.data.device_cache_mb)
    loader = make_loader(dataset, cfg.schedule.batch_size, cfg.data.num_workers, info.rank, info.world_size, cfg.seed)
    validator = (Validator(val_hr, cfg.scale, cfg.data.grid_images, device, tc_pairs, cfg.data.grid_spectra)
                 if info.is_main else None)

    trainer = Trainer(cfg, info, device)
    if resume_from is not None:
        _, state = checkpoint.load(resume_from, map_location=device)
        trainer.load_state(state)

    total = cfg.schedule.pretrain_epochs + cfg.schedule.gan_epochs
    metrics: dict[str, Any] = {"status": "completed", "epoch": trainer.epoch}
    if resume_from is not None and trainer.epoch >= total:
        # the checkpoint is the run's last epoch (a launcher restarted a finished run):
        # report its final metrics again instead of training further
        metrics = broadcast({k: v for k, v in state.get("metrics", metrics).items() if k != "grid_path"}, info)
        if report is not None:
            report(metrics, None)
        return metrics
    while trainer.epoch < total:
        phase = trainer.phase(trainer.epoch)
        if validator is not None and phase == "gan" and trainer.gan_start_psnr is None:
            # no pretraining: the GAN phase starts from the initial generator; its score is the
            # level gan_psnr_drop is measured from (eval mode, no RNG drawn)
            start_val, _ = validator.evaluate(trainer.eval_generator(), cfg.runtime.channels_last)
            trainer.gan_start_psnr = start_val["val_psnr"]
        rates = trainer.start_epoch()
        train_metrics, diverged = trainer.run_epoch(loader, dataset, progress if info.is_main else None)
        trainer.epoch += 1
        done = diverged or trainer.epoch == total
        metrics = {"epoch": trainer.epoch, "phase": phase, "status": "diverged" if diverged else
                   ("completed" if done else "running"), "diverged": int(diverged),
                   "g_steps": trainer.g_steps, "d_steps": trainer.d_steps, **rates, **train_metrics}
        ckpt_dir = None
        if info.is_main:
            if not diverged:
                val, grid = validator.evaluate(trainer.eval_generator(), cfg.runtime.channels_last)
                metrics.update(val)
                if val["val_psnr"] > trainer.best_psnr:
                    trainer.best_psnr, trainer.best_epoch = val["val_psnr"], trainer.epoch
                    trainer.keep_best()
                if phase == "pretrain":
                    trainer.gan_start_psnr = val["val_psnr"]
                else:
                    trainer.gan_curve.append(val["val_psnr"])
                metrics["grid_path"] = str(save_grid(grid, out / "grids" / f"epoch_{trainer.epoch:04d}.png"))
            metrics.update(best_val_psnr=trainer.best_psnr, best_epoch=trainer.best_epoch)
            if phase == "gan" and trainer.gan_curve:
                metrics.update(gan_stability(trainer.gan_start_psnr, trainer.gan_curve))
            if done:  # the selected (best validation) epoch on the test sets, before the final report
                metrics.update(score_benchmarks(cfg, trainer.best_generator, trainer.best_epoch, device,
                                                progress))
            if not diverged:
                ckpt_dir = str(checkpoint.save(out / "checkpoints" / f"epoch_{trainer.epoch:04d}", cfg,
                                               {**trainer.state(), "metrics": metrics}))
        metrics = broadcast(metrics, info)
        if report is not None:
            report(metrics, ckpt_dir)
        if info.is_main and ckpt_dir is not None:
            # keep the newest checkpoint and the best epoch's; the others were reported already
            keep = {Path(ckpt_dir).name, f"epoch_{trainer.best_epoch:04d}"}
            for old in (out / "checkpoints").iterdir():
                if old.name not in keep:
                    shutil.rmtree(old, ignore_errors=True)
        if diverged:
            break
    return metrics


# ---------------------------------------------------------------------------- CLI


def _print_table(metrics: dict[str, Any], out: Path, scale: int) -> None:
    rows = [("SR (last epoch)", metrics.get("val_psnr"), metrics.get("val_ssim"), metrics.get("val_hf")),
            ("bicubic", metrics.get("bicubic_psnr"), metrics.get("bicubic_ssim"), metrics.get("bicubic_hf"))]
    print(f"\n{'':18} {'PSNR (dB)':>10} {'SSIM':>8} {'HF ratio':>9}")
    for name, p, s, h in rows:
        if p is None:
            continue
        print(f"{name:18} {p:10.2f} {s:8.4f} {h:9.3f}")
    for key in [k[len("test_"):-len("_psnr")] for k in metrics if k.startswith("test_") and k.endswith("_psnr")
                and not k.endswith("_bicubic_psnr")]:  # test sets scored on the best validation epoch
        for who, pre in ((f"{key} (epoch {metrics['test_epoch']})", f"test_{key}"), (f"{key} bicubic", f"test_{key}_bicubic")):
            print(f"{who:18} {metrics[pre + '_psnr']:10.2f} {metrics[pre + '_ssim']:8.4f} {metrics[pre + '_hf']:9.3f}")
    if "val_tc" in metrics:  # video runs
        print(f"temporal-consistency error (Y levels, lower is better): SR {metrics['val_tc']:.3f}, "
              f"bicubic {metrics['bicubic_tc']:.3f}")
    print(f"\nstatus {metrics['status']} after {metrics['epoch']} epochs; best validation PSNR "
          f"{metrics.get('best_val_psnr', float('nan')):.2f} dB at epoch {metrics.get('best_epoch')}")
    print(f"checkpoints: {out / 'checkpoints'}   grids: {out / 'grids'}")
    best = out / "checkpoints" / f"epoch_{metrics.get('best_epoch', 0):04d}"
    if best.exists():
        print(f"score on a benchmark: python -m trainables.evaluate --checkpoint {best} --data DIR --scale "
              f"{scale}")


def _epoch_line(m: dict[str, Any]) -> str:
    line = (f"epoch {m['epoch']:3d} {m['phase']:8} loss_g {m['loss_g']:.4f}")
    if m["phase"] == "gan":
        line += f" loss_d {m['loss_d']:.4f} D(real) {m['d_real']:.3f} D(fake) {m['d_fake']:.3f}"
    if "val_psnr" in m:
        line += f" | val PSNR {m['val_psnr']:.2f} (bicubic {m['bicubic_psnr']:.2f}) SSIM {m['val_ssim']:.4f}"
    if "val_tc" in m:
        line += f" TC {m['val_tc']:.3f} (bicubic {m['bicubic_tc']:.3f})"
    return line + f" | {m['images_per_s']:.0f} img/s"


def _check_resume(cfg: TrialConfig, folder: str) -> None:
    """--resume: a readable checkpoint of the same model (sizes, scale, frames), or one line saying why not."""
    from trainables.evaluate import RESUME_KEYS, read_checkpoint

    saved, _ = read_checkpoint(folder, "--resume", need=RESUME_KEYS)
    shaped = {"scale": (saved.scale, cfg.scale), "data.frames": (saved.data.frames, cfg.data.frames),
              **{f"model.{k}": (v, getattr(cfg.model, k)) for k, v in vars(saved.model).items()}}
    differ = [f"{k}={a} (this run: {b})" for k, (a, b) in shaped.items() if a != b]
    if differ:
        raise UserError(f"--resume {folder}: the checkpoint is of another model: {', '.join(differ)}; "
                        "resume with the checkpoint's config (its config.yaml) or start a new run")


def _on_sigterm(signum: int, frame) -> None:
    raise KeyboardInterrupt  # a scheduler's SIGTERM ends the run as Ctrl-C does: exit 130, resumable


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m trainables.train", description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", help="YAML trial config (defaults for anything it omits)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one value, e.g. --set loss.beta=0.01 (repeatable)")
    parser.add_argument("--out", default=None, help="output folder (default: runs/train-YYYYmmdd-HHMMSS)")
    parser.add_argument("--resume", default=None, metavar="CHECKPOINT_DIR", help="continue from a checkpoint folder")
    args = parser.parse_args(argv)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():  # launched by torchrun
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    say = print if main_rank else (lambda *a, **k: None)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
        # Ctrl-C / SIGINT is KeyboardInterrupt even where the launcher started us with SIGINT ignored
        # (a background job of a non-interactive shell): a scheduler's SIGINT always ends the run with 130
        signal.signal(signal.SIGINT, signal.default_int_handler)
    out = Path(args.out or time.strftime("runs/train-%Y%m%d-%H%M%S"))
    created = None if out.exists() else out  # the outermost folder this run creates (gone again on bad input)
    while created is not None and not created.parent.exists() and created.parent != created:
        created = created.parent
    try:
        # every input is checked before the output folder exists or data is read
        cfg = load_config(args.config, parse_set_args(args.overrides))
        check_writable_dir(out, "--out")
        if args.resume is not None:
            _check_resume(cfg, args.resume)
        say("resolved configuration:\n" + dump_yaml(cfg))
        say(f"output folder: {out}\n")
        result = train(cfg, report=lambda m, _: say(_epoch_line(m), flush=True), out_dir=out,
                       resume_from=args.resume, progress=lambda s: say(s, flush=True))
    except UserError as exc:
        _drop_if_empty(out, created)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; resume with --resume {out / 'checkpoints'}/<latest epoch folder>", file=sys.stderr)
        return 130
    if main_rank:
        _print_table(result, out, cfg.scale)
    return 0 if result["status"] == "completed" else 1


def _drop_if_empty(out: Path, created: Path | None) -> None:
    """A run that failed on bad input leaves no empty folder behind (only those it made itself)."""
    if created is None:
        return
    folder = out
    while folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        if folder == created:
            break
        folder = folder.parent


if __name__ == "__main__":
    raise SystemExit(main())

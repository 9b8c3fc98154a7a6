"""The metrics a trial reports: one table of names, with which way is better, label, decimals and bicubic twin.

`study` validates objectives and claims against it and `reports` labels and formats its
columns from it; the trainer writes the same names (trainables.train, .validation, .benchmarks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Metric:
    name: str
    # val: a validation score, read at a trial's selected epoch; train: a per-epoch training signal
    # (losses, D outputs, the running best PSNR); final: logged once, with the final result
    kind: Literal["val", "train", "final"]
    better: Literal["max", "min", "one"] | None = None  # one: closest to 1 (HF ratio: HR's detail); None: no rule
    label: str | None = None  # report column and axis label
    decimals: int | None = None  # None: 4 significant digits
    bicubic: str | None = None  # the bicubic score of the same quantity, logged beside it
    objective: bool = True  # a spec may optimise it (test_epoch and diverged are read by claims only)


TABLE = (
    Metric("val_psnr", "val", "max", "PSNR (dB)", 2, "bicubic_psnr"),
    Metric("val_ssim", "val", "max", "SSIM", 4, "bicubic_ssim"),
    Metric("val_hf", "val", "one", "HF ratio", 3, "bicubic_hf"),
    Metric("val_hf_err", "val", "min", "HF error", 3),
    Metric("val_mse", "val", "min", "MSE"),
    Metric("best_val_psnr", "train", None, "best PSNR (dB)", 2),
    Metric("loss_g", "train", None, "loss G"),
    Metric("loss_d", "train", None, "loss D"),
    Metric("loss_pixel", "train", None, "pixel loss"),
    Metric("d_real", "train", None, "D(real)"),
    Metric("d_fake", "train", None, "D(fake)"),
    Metric("val_tc", "val", "min", "TC error", 3, "bicubic_tc"),  # video sources only: temporal-consistency error
    Metric("val_grid", "val", bicubic="bicubic_grid"),  # periodic (gridding) energy over HR's, min
    Metric("gan_psnr_spread", "final"),  # GAN-phase stability (trainables.stability), min
    Metric("gan_psnr_drop", "final"),
    Metric("test_epoch", "final", objective=False),  # the epoch the test-set scores come from
    Metric("diverged", "final", objective=False),  # 1 for a trial that diverged
)
BY_NAME = {m.name: m for m in TABLE}
SHOWN = ("val_psnr", "val_ssim", "val_hf")  # the paper's three columns
TEST_SETS = ("set5", "set14", "bsd100", "urban100")
# test-set scores of the best validation epoch, final result only (trainables.benchmarks)
TEST_METRICS = tuple(f"test_{s}_{m}" for s in TEST_SETS for m in ("psnr", "ssim", "hf"))
# any test-set score: test_<set>_psnr, test_<set>_bicubic_ssim, ...
TEST_METRIC = re.compile(r"^test_(?P<set>[a-z0-9_]+?)_(?P<bicubic>bicubic_)?(?P<kind>psnr|ssim|hf)$")

OBJECTIVE_METRICS = (*(m.name for m in TABLE if m.objective), *TEST_METRICS)
LABELS = {m.name: m.label for m in TABLE if m.label is not None}
DECIMALS = {m.name: m.decimals for m in TABLE if m.decimals is not None}
BETTER = {m.name: m.better for m in TABLE if m.better is not None}


def bicubic_twin(metric: str) -> str | None:
    """The bicubic score of the same quantity: val_hf -> bicubic_hf, test_set5_psnr -> test_set5_bicubic_psnr."""
    m = TEST_METRIC.match(metric)
    if m:
        return None if m["bicubic"] else f"test_{m['set']}_bicubic_{m['kind']}"
    return BY_NAME[metric].bicubic if metric in BY_NAME else None

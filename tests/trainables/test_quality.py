"""The quality benchmark's budget logic on a tiny run with a fake clock (no timing involved)."""

import itertools

import pytest

from trainables.errors import UserError
from trainables.quality import benchmark_config, run_budget, score_benchmarks

TINY = {"data.patch_size": 32, "data.val_images": 1, "data.val_patches_per_image": 2, "data.grid_images": 1,
        "model.g_channels": 8, "model.g_blocks": 1, "schedule.patches_per_epoch": 16, "schedule.batch_size": 8,
        "runtime.threads": 1, "optim.schedule": "cosine"}


def test_budget_sizes_the_cosine_schedule_after_timing_the_first_epoch(photo_folder, tmp_path):  # noqa: F811
    cfg = benchmark_config("folder", str(photo_folder), dict(TINY))
    ticks = itertools.count(0.0, 10.0)  # every reading of the clock is 10 s later
    run = run_budget(cfg, 0.5, lambda: next(ticks), tmp_path, say=lambda s: None)
    # start 0, first epoch 10 s: 1 + floor((30 - 10) / 10) = 3 epochs, the cosine sized to 3
    assert run["planned_epochs"] == run["epochs"] == 3
    assert run["final"]["lr_pretrain_now"] == pytest.approx(cfg.optim.lr_pretrain * 0.25)  # (1 + cos(2pi/3)) / 2
    assert run["checkpoint"].endswith("epoch_0003")


def test_budget_running_out_early_stops_at_the_end_of_that_epoch(photo_folder, tmp_path):  # noqa: F811
    cfg = benchmark_config("folder", str(photo_folder), dict(TINY))
    readings = iter([0.0, 10.0, 40.0, 50.0, 60.0])  # the second epoch takes 30 s: the budget is gone
    run = run_budget(cfg, 0.5, lambda: next(readings), tmp_path, say=lambda s: None)
    assert (run["planned_epochs"], run["epochs"]) == (3, 2)


def test_epochs_are_the_budgets_to_set_and_scores_need_a_folder(tmp_path):
    with pytest.raises(UserError, match="schedule.pretrain_epochs"):
        benchmark_config("builtin", None, {"schedule.pretrain_epochs": 5})
    assert score_benchmarks(tmp_path, None) == {}

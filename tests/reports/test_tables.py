"""reports.tables on the known demo study: best epochs, groups over seeds, exact numbers, status counts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reports import tables
from reports.importance import param_importances
from tests.reports.conftest import spec_of


@pytest.fixture(scope="module")
def best(demo):
    return tables.best_rows(demo.trials, demo.history, demo.spec).set_index("trial_id")


@pytest.fixture(scope="module")
def groups(demo):
    b = tables.best_rows(demo.trials, demo.history, demo.spec)
    return tables.group_table(b, demo.spec, tables.searched_keys(demo.spec, demo.trials))


def test_best_epoch_carries_every_metric_from_that_epoch(best):
    # a0's PSNR peaks at epoch 2 of 3, so it is credited with epoch 2's SSIM (0.85), not the later 0.90
    assert best.loc["a0", "best_epoch"] == 2
    assert best.loc["a0", "val_psnr"] == 30.0 and best.loc["a0", "val_ssim"] == 0.85 and best.loc["a0", "val_hf"] == 0.7
    assert best.loc["b1", "best_epoch"] == 1 and best.loc["b1", "val_psnr"] == 27.0  # diverged later
    assert "+step+2+" in best.loc["a0", "grid_artifact"]
    assert math.isnan(best.loc["c0", "best_epoch"]) and math.isnan(best.loc["c0", "val_psnr"])


def test_final_discriminator_gap_and_train_time(best):
    assert best.loc["a0", "d_gap"] == pytest.approx(0.7 - 0.3)
    assert best.loc["a0", "train_time_total_s"] == 6.0 and best.loc["c0", "train_time_total_s"] == 0.0


def test_groups_join_seeds_and_rank_by_the_objective(groups):
    assert groups["group"].tolist() == ["family=lsgan, beta=0.01", "family=bce, beta=0.001", "family=bce, beta=0.05"]
    assert groups["rank"].tolist() == [1, 2, 3]
    lsgan = groups.iloc[0]
    assert lsgan["n"] == 2 and lsgan["seeds"] == "0, 1"
    # two seeds at 30.0 and 31.0: mean 30.5, sample std (ddof=1) 0.7071
    assert lsgan["val_psnr_mean"] == pytest.approx(30.5)
    assert lsgan["val_psnr_std"] == pytest.approx(math.sqrt(0.5))
    assert lsgan["val_ssim_mean"] == pytest.approx(0.86) and lsgan["val_ssim_std"] == pytest.approx(0.0141421, abs=1e-6)
    assert lsgan["val_hf_mean"] == pytest.approx(0.75)
    assert lsgan["best_epochs"] == "2" and lsgan["d_gap_mean"] == pytest.approx(0.5)


def test_status_counts_per_group(groups):
    g = groups.set_index("group")
    bce = g.loc["family=bce, beta=0.001"]
    assert (bce["completed"], bce["stopped early"], bce["diverged"], bce["failed"]) == (0, 1, 1, 0)
    assert bce["val_psnr_mean"] == pytest.approx(27.75) and bce["best_epochs"] == "1–2"
    failed = g.loc["family=bce, beta=0.05"]
    assert failed["failed"] == 1 and math.isnan(failed["val_psnr_mean"])


def test_best_trial_of_each_group(groups, demo):
    run_of = dict(zip(demo.trials["run_id"], demo.trials["trial_id"]))
    assert [run_of[r] for r in groups["best_run_id"]] == ["a1", "b0", "c0"]


def test_main_table_strings_and_bicubic_row(demo, groups):
    b = tables.best_rows(demo.trials, demo.history, demo.spec)
    bicubic = tables.bicubic_rows(b, demo.spec)
    keys = tables.searched_keys(demo.spec, demo.trials)
    header, refs, rows = tables.main_table(groups, bicubic, demo.spec, keys)
    assert header[:5] == ["#", "family", "beta", "n", "PSNR (dB)"]
    assert rows[0][:7] == ["1", "lsgan", "0.01", "2", "**30.50 ± 0.71**", "**0.8600 ± 0.0141**", "**0.750 ± 0.071**"]
    assert rows[1][4] == "27.75 ± 1.06" and rows[1][-3:] == ["1/2", "1/2", "0.550 ± 0.636"]
    assert rows[2][4] == "—"
    assert refs == [["", "bicubic", "", "", "27.50", "0.7800", "0.300", "", "", "", ""]]
    assert all(len(r) == len(header) for r in refs + rows)


def test_bicubic_row_per_validation_setting():
    best = pd.DataFrame({"param.scale": [2, 2, 4], "param.data.patch_size": [32, 32, 32],
                         "bicubic_psnr": [33.0, 33.0, 28.0], "bicubic_ssim": [0.9, 0.9, 0.8],
                         "bicubic_hf": [0.5, 0.5, 0.3]})
    rows = tables.bicubic_rows(best, spec_of())
    assert rows["label"].tolist() == ["bicubic (scale=2)", "bicubic (scale=4)"]
    assert rows["val_psnr_mean"].tolist() == [33.0, 28.0]


def test_bins_over_a_log_range(demo):
    b = tables.best_rows(demo.trials, demo.history, demo.spec)
    keys = tables.searched_keys(demo.spec, demo.trials)
    cols = tables.group_columns(b, demo.spec, keys, bins=3)  # 1e-4..1e-1 in 3 log bins: decades
    assert cols["loss.beta"].tolist() == ["0.01–0.1", "0.01–0.1", "0.001–0.01", "0.001–0.01", "0.01–0.1"]
    g = tables.group_table(b, demo.spec, keys, bins=3)
    assert g.loc[g["group"] == "family=bce, beta=0.01–0.1", "n"].item() == 1


def test_mean_std_is_sample_std():
    assert tables.mean_std(pd.Series([30.0, 31.0])) == pytest.approx((30.5, 0.70710678, 2))
    mean, std, n = tables.mean_std(pd.Series([30.0, np.nan]))
    assert (mean, n) == (30.0, 1) and math.isnan(std)


def test_pareto_mask_with_modes():
    values = np.array([[30.0, 0.5], [29.0, 0.3], [28.0, 0.6], [31.0, 0.9], [np.nan, 0.1]])
    assert tables.pareto_mask(values, ["max", "min"]).tolist() == [True, True, False, True, False]


def test_trial_table_ranks_every_trial(demo):
    b = tables.best_rows(demo.trials, demo.history, demo.spec)
    header, rows = tables.trial_table(b, demo.spec, tables.searched_keys(demo.spec, demo.trials))
    assert [r[0] for r in rows] == ["a1", "a0", "b0", "b1", "c0"]
    assert rows[1][header.index("SSIM")] == "0.8500" and rows[1][header.index("best epoch")] == "2"


def test_compute_used(demo):
    b = tables.best_rows(demo.trials, demo.history, demo.spec)
    used = dict(tables.compute_used(b, demo.history, demo.spec, demo.parent))
    assert used["trials"] == "5 (2 completed, 1 stopped early, 1 diverged, 1 failed)"
    assert used["epochs trained (all trials)"] == "11"
    assert used["train time (sum of train_time_s)"] == "21.0 s"
    assert used["resources per trial"] == "1 worker(s) x (1 CPU, 0 GPU)"


def test_importances_need_two_varying_params(demo, multi, store):
    from reports.load import load_study

    b = tables.best_rows(multi.trials, multi.history, multi.spec)
    imps, why = param_importances(b, multi.spec, tables.searched_keys(multi.spec, multi.trials))
    assert why is None and set(imps) == {"val_psnr", "val_hf_err"}
    assert set(imps["val_psnr"]) == {"loss.beta", "optim.lr_g"}
    assert sum(imps["val_psnr"].values()) == pytest.approx(1.0)
    running = load_study("running", store.uri)
    rb = tables.best_rows(running.trials, running.history, running.spec)
    imps, why = param_importances(rb, running.spec, tables.searched_keys(running.spec, running.trials))
    assert imps == {} and "no continuous settings" in why


def test_multi_objective_groups_mark_the_pareto_front(multi):
    b = tables.best_rows(multi.trials, multi.history, multi.spec)
    keys = tables.searched_keys(multi.spec, multi.trials)
    g = tables.group_table(b, multi.spec, keys)
    assert g["val_psnr_mean"].tolist() == [31.0, 30.0, 29.0, 28.0]  # ranked by the first objective
    assert g["pareto"].tolist() == [True, True, True, False]
    header, refs, rows = tables.main_table(g, tables.bicubic_rows(b, multi.spec), multi.spec, keys)
    assert header[4:9] == ["PSNR (dB)", "HF error", "SSIM", "HF ratio", "Pareto"]
    assert [r[8] for r in rows] == ["yes", "yes", "yes", ""]
    assert [r[6] for r in rows] == ["0.8000"] * 4  # a tie everywhere is not bold
    assert rows[2][5] == "**0.300**"  # lowest HF error (minimised)
    assert all(len(r) == len(header) for r in refs + rows)
    assert math.isnan(b["d_gap"].iloc[0])  # pretraining only: D never trained

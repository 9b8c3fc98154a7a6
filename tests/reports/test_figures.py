"""reports.figures: the pure figure functions have the expected panels, lines and titles, and save to PNG."""

from __future__ import annotations

import numpy as np
import pytest

from reports import figures, tables
from reports.importance import param_importances


def _best(study):
    keys = tables.searched_keys(study.spec, study.trials)
    best = tables.best_rows(study.trials, study.history, study.spec)
    best["group"] = tables.group_columns(best, study.spec, keys)["group"]
    order = tables.group_table(best, study.spec, keys)["group"].tolist()
    return best, order


def test_sample_grids_one_panel_per_group_with_labels(tmp_path):
    items = [(f"{i + 1}. family=g{i}\nPSNR (dB): 30.00 at epoch 2\ntrial t{i}, seed 0",
              np.full((16, 24, 3), 40 * i, np.uint8)) for i in range(5)]
    fig = figures.sample_grids(items, ncols=4)
    axes = fig.get_axes()
    assert len(axes) == 8  # 2 rows x 4 columns, the last 3 blank
    assert [len(ax.images) for ax in axes] == [1] * 5 + [0] * 3
    assert axes[0].get_title().startswith("1. family=g0") and "epoch 2" in axes[0].get_title()
    path = figures.save(fig, tmp_path / "f" / "samples.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_psnr_curves_one_line_per_group_and_the_bicubic_line(demo):
    best, order = _best(demo)
    fig = figures.curves(best, demo.history, "val_psnr", order, 27.5, "PSNR per epoch")
    (ax,) = fig.get_axes()
    labels = ax.get_legend().get_texts()
    names = [t.get_text() for t in labels]
    # the failed group has no history, so two group lines; then the bicubic line and pretraining span
    assert names == ["1. family=lsgan, beta=0.01", "2. family=bce, beta=0.001", "bicubic (27.5)", "MSE pretraining"]
    lsgan = next(line for line in ax.get_lines() if line.get_label().startswith("1."))
    assert lsgan.get_xdata().tolist() == [1, 2, 3]
    assert lsgan.get_ydata().tolist() == pytest.approx([29.5, 30.5, 30.0])  # mean over the two seeds
    assert ax.get_title() == "PSNR per epoch" and ax.get_ylabel() == "PSNR (dB)"
    assert len(ax.collections) >= 1  # the +- std band of the repeated group


def test_top_groups_coloured_the_rest_grey(demo):
    best, order = _best(demo)
    fig = figures.curves(best, demo.history, "val_mse", order, 0.01, "content loss", top=1)
    ax = fig.get_axes()[0]
    named = [t.get_text() for t in ax.get_legend().get_texts() if t.get_text()[0].isdigit()]
    assert named == ["1. family=lsgan, beta=0.01"]
    assert any(line.get_color() == figures.OTHERS for line in ax.get_lines())


def test_pareto_front_highlighted(multi):
    best, _ = _best(multi)
    objs = tables.objectives(multi.spec)
    fig = figures.pareto(best, objs)
    (ax,) = fig.get_axes()
    front = ax.collections[1]
    assert front.get_label() == "Pareto front" and len(front.get_offsets()) == 3
    assert fig._suptitle.get_text() == "Pareto front: 3 of 4 trials"
    assert ax.get_xlabel() == "PSNR (dB) (max)" and ax.get_ylabel() == "HF error (min)"


def test_importance_bars_per_objective(multi, tmp_path):
    best, _ = _best(multi)
    imps, _ = param_importances(best, multi.spec, tables.searched_keys(multi.spec, multi.trials))
    fig = figures.importances(imps, 4)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["PSNR (dB)", "HF error"]
    assert len(axes[0].patches) == 2
    assert figures.save(fig, tmp_path / "imp.png").stat().st_size > 1000

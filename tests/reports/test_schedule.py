"""The PBT report section's pure parts: lineage through donors, the winner, both figures."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from reports.schedule import is_pbt, lineage, population_figure, schedule_figure, winner_of  # noqa: E402
from tests.reports.conftest import spec_of  # noqa: E402

# trial c copied b after epoch 2; later b copied a after epoch 4 (c's own segment starts at 3)
EVENTS = {"c": [{"epoch": 2, "donor": "b", "old": {}, "new": {}, "donor_hp": {}}],
          "b": [{"epoch": 4, "donor": "a", "old": {}, "new": {}, "donor_hp": {}}]}


def history() -> pd.DataFrame:
    rows = []
    for trial, psnr, lr in (("a", [30, 31, 32, 33, 34, 35], 1e-4), ("b", [30, 30.5, 31, 31.5, 33.1, 34.1], 2e-4),
                            ("c", [29, 29.5, 30.6, 31.6, 32.6, 36.0], 5e-5)):
        for epoch, value in enumerate(psnr, start=1):
            rows.append({"trial_id": trial, "epoch": epoch, "val_psnr": value, "hp/optim.lr_g": lr * epoch})
    return pd.DataFrame(rows)


def test_lineage_walks_back_through_donors():
    assert lineage("c", 6, EVENTS) == [("b", 1, 2), ("c", 3, 6)]
    # b's own exploit at 4 is after c took b's epoch-2 state, so it is not in c's lineage
    assert lineage("b", 6, EVENTS) == [("a", 1, 4), ("b", 5, 6)]
    assert lineage("a", 6, EVENTS) == [("a", 1, 6)]
    # a model taken at epoch 3 of c: c's own epoch 3, b's epochs 1-2
    assert lineage("c", 3, EVENTS) == [("b", 1, 2), ("c", 3, 3)]


def test_winner_is_the_best_last_epoch():
    assert winner_of(history(), "val_psnr", "max") == ("c", 6)
    assert winner_of(history(), "val_psnr", "min") == ("b", 6)
    assert winner_of(pd.DataFrame(columns=["trial_id", "epoch"]), "val_psnr", "max") is None


def test_figures_draw_each_key_and_each_trial():
    fig = schedule_figure(history(), lineage("c", 6, EVENTS), ["optim.lr_g"])
    (ax,) = fig.axes
    lines = [line for line in ax.get_lines() if line.get_label().startswith(("b ", "c "))]
    assert [line.get_label() for line in lines] == ["b (epochs 1-2)", "c (epochs 3-6)"]
    assert list(lines[1].get_xdata()) == [3, 4, 5, 6]
    pop = population_figure(history(), "val_psnr", EVENTS)
    (ax,) = pop.axes
    c_line = next(line for line in ax.get_lines() if line.get_label() == "c")
    # the line breaks after c's exploit at epoch 2: its epoch 3 grew from b's epoch 2
    assert np.isnan(np.asarray(c_line.get_xdata(), float)).sum() == 1
    assert len(ax.texts) == 2  # one arrow per exploit


def test_only_pbt_specs_get_the_section():
    assert is_pbt(spec_of(searcher={"algorithm": "random"},
                          scheduler={"type": "pbt", "mutations": {"optim.lr_g": [1e-4, 1e-3]}}))
    assert not is_pbt(spec_of(scheduler={"type": "asha"})) and not is_pbt(spec_of())

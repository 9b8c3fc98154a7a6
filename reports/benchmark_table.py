"""The paper's table: test-set PSNR / SSIM of each group's selected generators, one column pair per benchmark set.

A trial's final result holds `test_<set>_psnr|ssim|hf` of its selected epoch (`test_epoch`,
the best validation epoch) and the bicubic row `test_<set>_bicubic_*`; `tables.best_rows`
reads them from the final result. Groups keep the validation ranking: nothing here is used
to choose anything.
"""

from __future__ import annotations

import math

import pandas as pd

from reports.tables import MISSING, fmt_epochs, fmt_metric, mean_std, mean_std_cells, ref_cells, short_key
from trainables.metric_names import TEST_SETS  # the paper's benchmark sets, in its order


def test_sets(best: pd.DataFrame) -> list[str]:
    """Benchmark sets with SR scores among the trials' metrics (`test_<set>_psnr`), paper order first."""
    found = {c[len("test_"):-len("_psnr")] for c in best.columns
             if c.startswith("test_") and c.endswith("_psnr") and "_bicubic_" not in c
             and pd.to_numeric(best[c], errors="coerce").notna().any()}
    return [s for s in TEST_SETS if s in found] + sorted(found - set(TEST_SETS))


def set_label(name: str) -> str:
    return {"set5": "Set5", "set14": "Set14", "bsd100": "BSD100", "urban100": "Urban100"}.get(name, name)


def test_table(best: pd.DataFrame, groups: pd.DataFrame, keys: list[str],
               sets: list[str]) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """(header, bicubic rows, group rows): one PSNR / SSIM pair per set, groups in validation rank order.

    Cells are mean ± sample std over a group's trials; the best group per column in bold.
    `test epoch` is the epoch each score comes from (the trials' selected epochs).
    """
    cols = [(s, kind) for s in sets for kind in ("psnr", "ssim")]
    header = ["#", *[short_key(k, keys) for k in keys], "n", *[f"{set_label(s)} {kind.upper()}" for s, kind in cols],
              "test epoch"]
    by_group = [best[best["group"] == label] for label in groups["group"]]
    columns = []
    for s, kind in cols:
        name = f"test_{s}_{kind}"
        found = pd.DataFrame([mean_std(g[name]) if name in g else (math.nan, math.nan, 0) for g in by_group],
                             index=groups.index, columns=["mean", "std", "n"])
        columns.append(mean_std_cells(found["mean"], found["std"], "val_" + kind, "max"))
    rows = []
    for (_, r), g, cells in zip(groups.iterrows(), by_group, zip(*columns)):
        rows.append([str(r["rank"]), *[r[k] for k in keys], str(r["n"]), *cells,
                     fmt_epochs(g["test_epoch"]) if "test_epoch" in g else MISSING])
    ref = ref_cells("bicubic", keys)
    for s, kind in cols:
        name = f"test_{s}_bicubic_{kind}"
        ref.append(fmt_metric("val_" + kind, mean_std(best[name])[0]) if name in best else MISSING)
    return header, [ref + [""]], rows

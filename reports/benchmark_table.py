"""The paper's table: test-set PSNR / SSIM of each group's selected generators, one column pair per benchmark set.

A trial's final result holds `test_<set>_psnr|ssim|hf` of its selected epoch (`test_epoch`,
the best validation epoch) and the bicubic row `test_<set>_bicubic_*`; `tables.best_rows`
reads them from the final result. Groups keep the validation ranking: nothing here is used
to choose anything.
"""

from __future__ import annotations

import math

import pandas as pd

from reports.tables import MISSING, best_indices, fmt_epochs, fmt_mean_std, fmt_metric, mean_std, short_key

# benchmark sets in the paper's order; any other set found follows, by name
KNOWN_SETS = ("set5", "set14", "bsd100", "urban100")


def test_sets(best: pd.DataFrame) -> list[str]:
    """Benchmark sets with SR scores among the trials' metrics (`test_<set>_psnr`), paper order first."""
    found = {c[len("test_"):-len("_psnr")] for c in best.columns
             if c.startswith("test_") and c.endswith("_psnr") and "_bicubic_" not in c
             and pd.to_numeric(best[c], errors="coerce").notna().any()}
    return [s for s in KNOWN_SETS if s in found] + sorted(found - set(KNOWN_SETS))


def set_label(name: str) -> str:
    return {"set5": "Set5", "set14": "Set14", "bsd100": "BSD100", "urban100": "Urban100"}.get(name, name)


def test_table(best: pd.DataFrame, groups: pd.DataFrame, keys: list[str],
               sets: list[str]) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """(header, bicubic rows, group rows): one PSNR / SSIM pair per set, groups in validation rank order.

    Cells are mean ± sample std over a group's trials; the best group per column in bold.
    `test epoch` is the epoch each score comes from (the trials' selected epochs).
    """
    header = ["#", *[short_key(k, keys) for k in keys], "n"]
    for s in sets:
        header += [f"{set_label(s)} PSNR", f"{set_label(s)} SSIM"]
    header += ["test epoch"]
    cols = [(s, kind) for s in sets for kind in ("psnr", "ssim")]
    stats: dict[str, list[tuple[float, float]]] = {}
    for label in groups["group"]:
        g = best[best["group"] == label]
        stats[label] = [mean_std(g[f"test_{s}_{k}"])[:2] if f"test_{s}_{k}" in g else (math.nan, math.nan)
                        for s, k in cols]
    bold = []
    for j, (_, kind) in enumerate(cols):
        means = pd.Series([stats[label][j][0] for label in groups["group"]], index=groups.index)
        bold.append(best_indices(means, "max", "val_" + kind))
    rows = []
    for i, r in groups.iterrows():
        g = best[best["group"] == r["group"]]
        cells = [str(r["rank"]), *[r[k] for k in keys], str(r["n"])]
        for j, (_, kind) in enumerate(cols):
            text = fmt_mean_std("val_" + kind, *stats[r["group"]][j])
            cells.append(f"**{text}**" if i in bold[j] else text)
        cells.append(fmt_epochs(g["test_epoch"]) if "test_epoch" in g else MISSING)
        rows.append(cells)
    ref = ["", "bicubic", *[""] * (len(keys) - 1 + 1)] if keys else ["bicubic", ""]
    for s, kind in cols:
        name = f"test_{s}_bicubic_{kind}"
        ref.append(fmt_metric("val_" + kind, mean_std(best[name])[0]) if name in best else MISSING)
    ref.append("")
    return header, [ref], rows

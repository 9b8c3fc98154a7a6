"""Pure matplotlib figures of a study: sample grids, per-epoch curves, the Pareto front, importances.

Each function takes frames (see `reports.load`) and returns a `matplotlib.figure.Figure`
built without pyplot, so nothing here touches global state or needs a display;
`save` writes one to PNG. `best` is `tables.best_rows(...)` with a `group` column.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from reports.tables import LABELS, pareto_mask

DPI = 150
OTHERS = "#bbbbbb"  # groups past the top ones are drawn, unlabelled, in grey


def save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def palette(n: int) -> list:
    """n line colours, tab10 repeated."""
    return [colormaps["tab10"](i % 10) for i in range(n)]


def sample_grids(items: list[tuple[str, np.ndarray]], ncols: int = 4) -> Figure:
    """The paper's Figure 6: one sample grid (rows SR | bicubic | LR | HR) per group, titled by group.

    items: (title, image) with image (H, W, 3) uint8, in rank order.
    """
    n = max(len(items), 1)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    h, w = (items[0][1].shape[:2] if items else (1, 1))
    panel_w = 3.2
    fig = Figure(figsize=(panel_w * ncols, nrows * (panel_w * h / w + 0.7)), layout="constrained")
    fig.suptitle("Samples at each group's best trial and epoch (rows: SR | bicubic | LR | HR)")
    for i in range(nrows * ncols):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.set_axis_off()
        if i < len(items):
            title, image = items[i]
            ax.imshow(image, interpolation="nearest")
            head, *rest = title.split("\n")
            ax.set_title("\n".join([*textwrap.wrap(head, 44), *rest]), fontsize=8)
    return fig


def _group_curves(best: pd.DataFrame, history: pd.DataFrame, metric: str) -> dict[str, pd.DataFrame]:
    """group -> frame indexed by epoch with mean, std, n of `metric` over the group's trials."""
    if metric not in history:
        return {}
    h = history[["run_id", "epoch", metric]].merge(best[["run_id", "group"]], on="run_id")
    out = {}
    for group, g in h.dropna(subset=[metric]).groupby("group", sort=False):
        out[group] = g.groupby("epoch")[metric].agg(["mean", "std", "count"])
    return out


def _pretrain_span(history: pd.DataFrame) -> tuple[float, float] | None:
    """Epochs every trial spent in MSE pretraining (phase_gan == 0), as an x-range to shade."""
    if "phase_gan" not in history:
        return None
    pre = history[history["phase_gan"] == 0]["epoch"]
    return (pre.min() - 0.5, pre.max() + 0.5) if len(pre) else None


def curves(best: pd.DataFrame, history: pd.DataFrame, metric: str, order: list[str], reference: float | None,
           title: str, reference_label: str = "bicubic", top: int = 8) -> Figure:
    """`metric` per epoch, one line per group (mean over seeds, band: +- sample std), the bicubic level dashed.

    order: group labels in rank order; the first `top` get colours and legend entries.
    """
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    named: dict[int, object] = {}  # rank -> line, for a legend in rank order
    extra = []  # then the reference line and the pretraining span
    data = _group_curves(best, history, metric)
    colors = palette(top)
    for rank, group in reversed(list(enumerate(order))):  # best group drawn last, on top
        if group not in data:
            continue
        c = data[group]
        color = colors[rank] if rank < top else OTHERS
        (line,) = ax.plot(c.index, c["mean"], marker="o", ms=3, lw=1.6 if rank < top else 0.8, color=color,
                          label=f"{rank + 1}. {group}" if rank < top else None, zorder=3 if rank < top else 2)
        if rank < top:
            named[rank] = line
            if (c["count"] > 1).any():
                ax.fill_between(c.index, c["mean"] - c["std"].fillna(0), c["mean"] + c["std"].fillna(0),
                                color=color, alpha=0.15, lw=0)
    if reference is not None and np.isfinite(reference):
        extra.append(ax.axhline(reference, color="black", ls="--", lw=1,
                                label=f"{reference_label} ({reference:.4g})"))
    span = _pretrain_span(history)
    if span is not None:
        extra.append(ax.axvspan(*span, color="#eeeeee", zorder=0, label="MSE pretraining"))
    ax.set_xlabel("epoch")
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.set_title(title)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    handles = [named[r] for r in sorted(named)] + extra
    ax.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="center left",
              bbox_to_anchor=(1.01, 0.5), frameon=False)
    if len(order) > top:
        ax.text(0.99, 0.01, f"{len(order) - top} more groups in grey", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="#777777")
    return fig


def pareto(best: pd.DataFrame, objectives: list[tuple[str, str]]) -> Figure:
    """Each pair of objectives (at every trial's best epoch) as a scatter; the Pareto front highlighted.

    The front is computed over all objectives at once, so with three or more a front
    point may look dominated in one pair's panel.
    """
    metrics = [m for m, _ in objectives]
    values = best[metrics].to_numpy(dtype=float) if all(m in best for m in metrics) else np.empty((0, len(metrics)))
    front = pareto_mask(values, [m for _, m in objectives]) if len(values) else np.zeros(0, bool)
    pairs = list(itertools.combinations(range(len(metrics)), 2))
    fig = Figure(figsize=(5.2 * len(pairs), 4.4), layout="constrained")
    fig.suptitle(f"Pareto front: {int(front.sum())} of {int(np.isfinite(values).all(axis=1).sum())} trials")
    for k, (i, j) in enumerate(pairs):
        ax = fig.add_subplot(1, len(pairs), k + 1)
        ax.scatter(values[~front, i], values[~front, j], s=18, color=OTHERS, label="dominated")
        ax.scatter(values[front, i], values[front, j], s=30, color="tab:red", label="Pareto front", zorder=3)
        if len(pairs) == 1 and front.any():  # the 2-D front as a staircase
            f = values[front][np.argsort(values[front, i])]
            ax.plot(f[:, i], f[:, j], color="tab:red", lw=1, drawstyle="steps-post"
                    if (objectives[i][1] == "max") != (objectives[j][1] == "max") else "steps-pre")
        for idx in np.flatnonzero(front):
            ax.annotate(str(best["group"].iloc[idx]), (values[idx, i], values[idx, j]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(f"{LABELS.get(metrics[i], metrics[i])} ({objectives[i][1]})")
        ax.set_ylabel(f"{LABELS.get(metrics[j], metrics[j])} ({objectives[j][1]})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def importances(values: dict[str, dict[str, float]], n_trials: int) -> Figure:
    """One horizontal bar chart of parameter importances per objective metric."""
    fig = Figure(figsize=(5.0 * len(values), 0.5 + 0.45 * max(len(v) for v in values.values()) + 1.2),
                 layout="constrained")
    fig.suptitle(f"Parameter importances (Optuna PED-ANOVA, {n_trials} trials)")
    for k, (metric, imp) in enumerate(values.items()):
        ax = fig.add_subplot(1, len(values), k + 1)
        names = list(imp)[::-1]
        ax.barh(names, [imp[n] for n in names], color="tab:blue")
        ax.set_xlim(0, 1)
        ax.set_xlabel("importance (sums to 1)")
        ax.set_title(LABELS.get(metric, metric))
        ax.grid(axis="x", alpha=0.3)
    return fig

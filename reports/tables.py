"""Pure tables from a loaded study: best-epoch metrics per trial, groups over seeds, the bicubic reference.

Decisions (the report states them too):
- Best epoch = the epoch with the best value of the study's first objective metric
  (earliest on ties); every metric of a trial is read at that epoch, so a trial whose
  PSNR peaks at epoch 2 of 3 is credited with epoch 2's SSIM and HF ratio as well.
- Groups = trials with equal values of every searched key (repeats of a configuration
  differ only in seed, so they share a group). Continuous params (uniform, loguniform,
  and int ranges) group by each trial's own value unless `bins` is given, then by
  `bins` equal-width bins over the spec's [low, high] (log-spaced for log ranges).
- Spread is mean +- sample standard deviation (ddof=1) over a group's trials; a group
  of one shows no spread.
- Groups are ranked by the mean of the first objective; trials without a value go last.
- Test-set scores (`test_<set>_psnr|ssim|hf`, logged once with a trial's final result) are
  of the selected generator, the best validation epoch (`test_epoch`); they are read from
  the final result, never used to choose anything, and the test table keeps the
  validation ranking. Whole-run stability figures (`gan_psnr_spread`, `gan_psnr_drop`) are
  read from the final result too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from reports.load import PARAM_PREFIX
from study.spec import Param, StudySpec
from trainables import metric_names
from trainables.metric_names import BETTER, LABELS, SHOWN

DECIMALS = {**metric_names.DECIMALS, "d_gap": 3}
STATUSES = ("completed", "stopped early", "diverged", "failed", "interrupted", "running")
MISSING = "—"
# metrics of the final result: read at a trial's last logged value, not at its best epoch
FINAL_PREFIXES = ("test_", "gan_psnr_")


# ----------------------------------------------------------------------------- spec helpers


def objectives(spec: StudySpec) -> list[tuple[str, str]]:
    """[(metric, mode), ...] of the spec's objective."""
    return list(zip(spec.objective.metrics, spec.objective.modes))


def searched_keys(spec: StudySpec, trials: pd.DataFrame) -> list[str]:
    """The spec's space keys in spec order, then any other key a trial's tag says was searched."""
    keys = list(spec.space)
    for searched in trials["searched"]:
        keys += [k for k in searched if k not in keys]
    return keys


def is_continuous(spec: StudySpec, key: str) -> bool:
    """A searched range (uniform, loguniform, int), not a choice; False for a key outside the space."""
    return key in spec.space and not spec.space[key].discrete


def shown_metrics(spec: StudySpec) -> list[str]:
    """The objective metrics, then the paper's three columns (SHOWN) not among them."""
    return list(dict.fromkeys([m for m, _ in objectives(spec)] + list(SHOWN)))


def short_key(key: str, keys: list[str]) -> str:
    """`loss.beta` -> `beta` unless two searched keys would then read alike."""
    tail = key.rsplit(".", 1)[-1]
    return tail if sum(k.rsplit(".", 1)[-1] == tail for k in keys) == 1 else key


def fmt_param(value: Any) -> str:
    if isinstance(value, float):
        return MISSING if math.isnan(value) else f"{value:.3g}"
    return MISSING if value is None else str(value)


def fmt_metric(metric: str, value: float) -> str:
    if value is None or not np.isfinite(value):
        return MISSING
    return f"{value:.{DECIMALS[metric]}f}" if metric in DECIMALS else f"{value:.4g}"


def fmt_mean_std(metric: str, mean: float, std: float) -> str:
    """`30.50 ± 0.71`; the mean alone when there is no spread to show."""
    text = fmt_metric(metric, mean)
    return text if text == MISSING or not np.isfinite(std) else f"{text} ± {fmt_metric(metric, std)}"


def fmt_statuses(statuses: pd.Series) -> str:
    """`3 completed, 1 diverged`: trials per status, in STATUSES order."""
    counts = statuses.value_counts()
    return ", ".join(f"{int(counts[s])} {s}" for s in STATUSES if s in counts)


def fmt_epochs(values: pd.Series) -> str:
    """The epochs a group's scores come from: `2`, or `2–3` when its trials differ."""
    e = pd.to_numeric(values, errors="coerce").dropna().astype(int)
    return MISSING if e.empty else str(e.min()) if e.min() == e.max() else f"{e.min()}–{e.max()}"


# ----------------------------------------------------------------------------- per trial


def best_rows(trials: pd.DataFrame, history: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """`trials` plus, per trial: best_epoch, every metric at the best epoch, and whole-run figures.

    Added columns: best_epoch (NaN without history), one column per metric (its value at
    best_epoch), d_gap (D(real) - D(fake) at the last GAN epoch: how far D separates the two
    when training ended; NaN without GAN epochs), train_time_total_s, grid_artifact and
    grid_epoch (the sample grid shown for the trial: its best epoch's, else the nearest).
    """
    metric, mode = objectives(spec)[0]
    # the trainer's own running `best_epoch` metric is replaced by this report's best epoch
    metric_cols = [c for c in history.columns
                   if c not in ("run_id", "trial_id", "epoch", "grid_artifact", "best_epoch")]
    out = []
    for run_id in trials["run_id"]:
        h = history[history["run_id"] == run_id].sort_values("epoch")
        train = float(h["train_time_s"].sum()) if "train_time_s" in h else 0.0
        row: dict[str, Any] = {"run_id": run_id, "best_epoch": np.nan, "d_gap": np.nan, "train_time_total_s": train,
                               "grid_artifact": None, "grid_epoch": np.nan}
        row.update({c: np.nan for c in metric_cols})
        values = pd.to_numeric(h[metric], errors="coerce") if metric in h else pd.Series(dtype=float)
        if values.notna().any():
            best = h.loc[values.idxmax() if mode == "max" else values.idxmin()]
            row.update({c: best[c] for c in metric_cols})
            row["best_epoch"] = int(best["epoch"])
            row["grid_artifact"], row["grid_epoch"] = _nearest_grid(h, int(best["epoch"]))
        for c in metric_cols:
            if c.startswith(FINAL_PREFIXES):  # the final result's value, whatever the best epoch
                last = pd.to_numeric(h[c], errors="coerce").dropna()
                row[c] = float(last.iloc[-1]) if len(last) else np.nan
        if {"d_real", "d_fake"} <= set(h.columns):
            # D is idle (logged as 0) in MSE pretraining epochs: only GAN epochs say how D ended
            gan = h[h["phase_gan"] == 1] if "phase_gan" in h else h
            both = gan.dropna(subset=["d_real", "d_fake"])
            if len(both):
                row["d_gap"] = float(both["d_real"].iloc[-1] - both["d_fake"].iloc[-1])
        out.append(row)
    extra = pd.DataFrame(out, columns=["run_id", "best_epoch", "d_gap", "train_time_total_s", "grid_artifact",
                                       "grid_epoch", *metric_cols])
    return trials.merge(extra, on="run_id", how="left")


def _nearest_grid(h: pd.DataFrame, epoch: int) -> tuple[str | None, float]:
    """(artifact, epoch) of the best epoch's grid, else the closest earlier one, else the first later one."""
    g = h.dropna(subset=["grid_artifact"]) if "grid_artifact" in h else h.iloc[0:0]
    if g.empty:
        return None, math.nan
    earlier = g[g["epoch"] <= epoch]
    pick = earlier.iloc[-1] if len(earlier) else g.iloc[0]
    return pick["grid_artifact"], int(pick["epoch"])


# ----------------------------------------------------------------------------- groups


def bin_labels(values: pd.Series, param: Param, bins: int) -> pd.Series:
    """Equal-width bins over the param's [low, high] (log-spaced for log ranges), labelled `lo–hi`."""
    x = pd.to_numeric(values, errors="coerce")
    low, high = float(param.low), float(param.high)
    log = param.type == "loguniform" or param.log
    edges = np.geomspace(low, high, bins + 1) if log and low > 0 else np.linspace(low, high, bins + 1)
    idx = np.clip(np.searchsorted(edges, x.to_numpy(), side="right") - 1, 0, bins - 1)
    labels = [f"{edges[i]:.2g}–{edges[i + 1]:.2g}" for i in range(bins)]
    return pd.Series([labels[i] if np.isfinite(v) else MISSING for i, v in zip(idx, x)], index=values.index)


def group_columns(best: pd.DataFrame, spec: StudySpec, keys: list[str], bins: int | None = None) -> pd.DataFrame:
    """One display-string column per searched key plus `group` (the row's label), per trial."""
    cols = pd.DataFrame(index=best.index)
    for key in keys:
        raw = best.get(PARAM_PREFIX + key, pd.Series([None] * len(best), index=best.index))
        if bins and is_continuous(spec, key):
            cols[key] = bin_labels(raw, spec.space[key], bins)
        else:
            cols[key] = raw.map(fmt_param)
    cols["group"] = [", ".join(f"{short_key(k, keys)}={r[k]}" for k in keys) or "all trials"
                     for _, r in cols.iterrows()]
    return cols


def mean_std(values: pd.Series) -> tuple[float, float, int]:
    """Mean, sample std (ddof=1; NaN for fewer than 2 values) and count of the finite values."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)


def group_table(best: pd.DataFrame, spec: StudySpec, keys: list[str], bins: int | None = None) -> pd.DataFrame:
    """One row per group, ranked by the first objective: the numbers behind the report's main table.

    Columns: rank, group, one per searched key, n, seeds, <metric>_mean/_std/_n for each
    shown metric, best_epochs, one count per status, d_gap_mean/_std, best_run_id (the
    group's best trial by the first objective), and for several objectives `pareto` (no
    other group's means are at least as good on every objective and better on one).
    """
    metric, mode = objectives(spec)[0]
    labels = group_columns(best, spec, keys, bins)
    frame = pd.concat([best, labels.add_prefix("g:")], axis=1)
    rows = []
    for label, g in frame.groupby("g:group", sort=False):
        row: dict[str, Any] = {"group": label, **{k: g[f"g:{k}"].iloc[0] for k in keys}, "n": len(g),
                               "seeds": ", ".join(str(s) for s in sorted(g["seed"].dropna().unique()))}
        for m in shown_metrics(spec):
            row[f"{m}_mean"], row[f"{m}_std"], row[f"{m}_n"] = mean_std(g[m]) if m in g else (math.nan, math.nan, 0)
        row["best_epochs"] = fmt_epochs(g["best_epoch"])
        for status in STATUSES:
            row[status] = int((g["status"] == status).sum())
        row["d_gap_mean"], row["d_gap_std"], _ = mean_std(g["d_gap"])
        ranked = (g.sort_values(metric, ascending=(mode == "min"), na_position="last", kind="stable")
                  if metric in g else g)
        row["best_run_id"] = ranked["run_id"].iloc[0]
        rows.append(row)
    table = pd.DataFrame(rows)
    objs = objectives(spec)
    if len(objs) > 1:  # which groups' means no other group's means dominate
        table["pareto"] = pareto_mask(table[[f"{m}_mean" for m, _ in objs]].to_numpy(), [m for _, m in objs])
    table = table.sort_values(f"{metric}_mean", ascending=(mode == "min"), na_position="last", kind="stable")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def bicubic_rows(best: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """The bicubic reference: one row per validation setting (scale and data.* params that vary).

    Columns: label, then <metric>_mean/_std for each shown metric that has a bicubic_* twin.
    """
    # data.frames (the video window) is not a setting: every window validates on the same centre frames
    setting = [c for c in best if (c == PARAM_PREFIX + "scale" or c.startswith(PARAM_PREFIX + "data."))
               and c != PARAM_PREFIX + "data.frames" and best[c].map(fmt_param).nunique() > 1]
    groups = best.groupby([best[c].map(fmt_param) for c in setting], sort=True) if setting else [((), best)]
    rows = []
    for values, g in groups:  # grouping by a list gives tuples, one value per setting
        label = "bicubic" + (" (" + ", ".join(f"{c[len(PARAM_PREFIX):]}={v}" for c, v in zip(setting, values))
                             + ")" if setting else "")
        row: dict[str, Any] = {"label": label}
        for m in shown_metrics(spec):
            twin = "bicubic_" + m.removeprefix("val_")
            row[f"{m}_mean"], row[f"{m}_std"], _ = mean_std(g[twin]) if twin in g else (math.nan, math.nan, 0)
            if row[f"{m}_std"] < 1e-9:  # one validation set gives one bicubic value: no spread to show
                row[f"{m}_std"] = math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def pareto_mask(values: np.ndarray, modes: list[str]) -> np.ndarray:
    """True for the rows no other row dominates (rows with NaN are never on the front)."""
    signed = np.asarray(values, dtype=float) * np.array([1.0 if m == "max" else -1.0 for m in modes])
    ok = np.isfinite(signed).all(axis=1)
    front = ok.copy()
    for i in np.flatnonzero(ok):
        others = signed[ok]
        front[i] = not np.any((others >= signed[i]).all(axis=1) & (others > signed[i]).any(axis=1))
    return front


# ----------------------------------------------------------------------------- display


def best_indices(col: pd.Series, rule: str, metric: str) -> set[int]:
    """Rows holding the best shown value (ties all count); none when every row shows the same."""
    v = pd.to_numeric(col, errors="coerce")
    if v.notna().sum() < 2:
        return set()
    shown = v.map(lambda x: fmt_metric(metric, x))
    if shown[v.notna()].nunique() == 1:
        return set()
    score = -(v - 1).abs() if rule == "one" else v if rule == "max" else -v
    return {int(i) for i in v.index if v.notna()[i] and shown[i] == shown[score.idxmax()]}


def mean_std_cells(means: pd.Series, stds: pd.Series, metric: str, rule: str) -> list[str]:
    """`mean ± std` per row, the rows holding the best mean (see `best_indices`) in **bold**."""
    bold = best_indices(means, rule, metric)
    cells = [fmt_mean_std(metric, mean, std) for mean, std in zip(means, stds)]
    return [f"**{text}**" if i in bold else text for i, text in zip(means.index, cells)]


def ref_cells(label: str, keys: list[str]) -> list[str]:
    """A reference row's cells under `#`, the searched keys and `n`: the label under the first key, else under `#`."""
    return ["", label, *[""] * len(keys)] if keys else [label, ""]


def main_table(groups: pd.DataFrame, bicubic: pd.DataFrame, spec: StudySpec,
               keys: list[str]) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """(header, reference rows, ranked rows) of display strings; the best group per metric in **bold**."""
    metrics = shown_metrics(spec)
    modes = dict(objectives(spec))
    multi = "pareto" in groups
    header = ["#", *[short_key(k, keys) for k in keys], "n", *[LABELS.get(m, m) for m in metrics],
              *(["Pareto"] if multi else []), "best epoch", "diverged", "stopped early", "D(real)−D(fake)"]
    columns = [mean_std_cells(groups[f"{m}_mean"], groups[f"{m}_std"], m, modes.get(m, BETTER.get(m, "max")))
               for m in metrics]
    rows = []
    for (_, r), cells in zip(groups.iterrows(), zip(*columns)):
        rows.append([str(r["rank"]), *[r[k] for k in keys], str(r["n"]), *cells,
                     *(["yes" if r["pareto"] else ""] if multi else []), r["best_epochs"],
                     f"{r['diverged']}/{r['n']}", f"{r['stopped early']}/{r['n']}",
                     fmt_mean_std("d_gap", r["d_gap_mean"], r["d_gap_std"])])
    refs = [[*ref_cells(b["label"], keys), *[fmt_mean_std(m, b[f"{m}_mean"], b[f"{m}_std"]) for m in metrics],
             *[""] * (4 + multi)] for _, b in bicubic.iterrows()]
    return header, refs, rows


def trial_table(best: pd.DataFrame, spec: StudySpec, keys: list[str]) -> tuple[list[str], list[list[str]]]:
    """Every trial at its best epoch, ranked by the first objective."""
    metric, mode = objectives(spec)[0]
    metrics = shown_metrics(spec)
    ranked = best.sort_values(metric, ascending=(mode == "min"), na_position="last", kind="stable") \
        if metric in best else best
    header = ["trial", *[short_key(k, keys) for k in keys], "seed", "status", "epochs", "best epoch",
              *[LABELS.get(m, m) for m in metrics], "D(real)−D(fake)", "train time (s)"]
    rows = []
    for _, r in ranked.iterrows():
        rows.append([str(r["trial_id"]), *[fmt_param(r.get(PARAM_PREFIX + k)) for k in keys],
                     MISSING if pd.isna(r["seed"]) else str(r["seed"]), r["status"], str(r["epochs"]),
                     MISSING if pd.isna(r["best_epoch"]) else str(int(r["best_epoch"])),
                     *[fmt_metric(m, r[m]) if m in r else MISSING for m in metrics],
                     fmt_metric("d_gap", r["d_gap"]), f"{r['train_time_total_s']:.1f}"])
    return header, rows


# ----------------------------------------------------------------------------- compute


def duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return MISSING
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def compute_used(best: pd.DataFrame, history: pd.DataFrame, spec: StudySpec,
                 parent: dict[str, Any]) -> list[tuple[str, str]]:
    """(quantity, value) rows: trials by status, epochs, summed train time, wall time, resources."""
    train = float(best["train_time_total_s"].sum())
    workers, cpus, gpus = spec.resources.workers, spec.resources.cpus_per_worker, spec.resources.gpus_per_worker
    rows = [("trials", f"{len(best)} ({fmt_statuses(best['status'])})"),
            ("configurations x repeats", f"{spec.trials} x {spec.repeats}"),
            ("epochs trained (all trials)", str(int(best["epochs"].sum()))),
            ("train time (sum of train_time_s)", duration(train))]
    end = parent["end_time"] if pd.notna(parent["end_time"]) else pd.Timestamp.now(tz="UTC")
    if pd.notna(parent["start_time"]):
        rows.append(("study wall time", duration((end - parent["start_time"]).total_seconds())
                     + ("" if pd.notna(parent["end_time"]) else " (so far)")))
    if spec.source:  # a default spec (reports.load: spec.yaml missing or invalid) would only guess them
        rows.append(("resources per trial", f"{workers} worker(s) x ({cpus:g} CPU, {gpus:g} GPU)"))
        if gpus:
            rows.append(("GPU time (train time x workers x GPUs)", duration(train * workers * gpus)))
    if "images_per_s" in history and history["images_per_s"].notna().any():
        rows.append(("throughput (median over trial-epochs)", f"{history['images_per_s'].median():.1f} images/s"))
    device = PARAM_PREFIX + "runtime.device"
    if device in best:
        rows.append(("runtime.device", ", ".join(sorted(best[device].map(str).unique()))))
    return rows


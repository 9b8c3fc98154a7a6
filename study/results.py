"""A finished study as one table: trials, their searched settings, best metrics, status."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from study.spec import StudySpec
from trainables.metric_names import SHOWN, bicubic_twin

TRIAL_INDEX = "__trial_index__"  # set by ray.tune.search.Repeater: the repeat (seed offset)


# Tune's states of a trial that had not ended when the study stopped (Ctrl-C, SIGTERM)
UNFINISHED = ("PENDING", "RUNNING", "PAUSED")


def trial_status(last: dict[str, Any], error: Any, tune_status: str | None = None) -> str:
    """completed | stopped early (the scheduler ended it) | diverged | failed | interrupted.

    `tune_status` is the trial's state in Tune's last snapshot before the study stopped
    (see `unfinished_trials`); a trial still pending or running there was interrupted,
    never "stopped early" (which means the scheduler, ASHA, ended it).
    """
    if error is not None:
        return "failed"
    status = last.get("status")
    if status in ("completed", "diverged"):
        return status
    if tune_status in UNFINISHED:
        return "interrupted"
    return "stopped early"


def snapshot_states(results) -> dict[str, str]:
    """trial id -> Tune state in the study's last saved snapshot (written before trials are torn down).

    After an interruption Tune stops the running trials and marks them TERMINATED in
    memory, which reads like a scheduler's stop; the snapshot on storage still says
    RUNNING (or PENDING), which is the truth the table needs.
    """
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(results.experiment_path, storage_filesystem=results.filesystem)
    states: dict[str, str] = {}
    for trial in analysis.trials:
        # a trial that never reported has no trial_id metric: the table keys it by its folder name
        states[trial.trial_id] = states[str(trial.path).rstrip("/").rsplit("/", 1)[-1]] = trial.status
    return states


def summarize(spec: StudySpec, results, states: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per trial from a Tune ResultGrid, sorted by the (first) objective.

    `states` (trial id -> Tune state, from `snapshot_states`) marks interrupted trials.

    Metrics are taken at the trial's best epoch for the first objective (so a trial that
    peaked and then degraded is credited with its peak, as the paper's tables are).
    """
    metric, mode = spec.objective.metrics[0], spec.objective.modes[0]
    rows = []
    for result in results:
        history = result.metrics_dataframe
        last = result.metrics or {}
        row: dict[str, Any] = {"trial_id": last.get("trial_id") or _trial_id(result)}
        config = result.config or {}
        for key in spec.space:
            row[key] = config.get(key)
        row["seed"] = spec.base_config.seed + int(config.get(TRIAL_INDEX, 0))
        row["status"] = trial_status(last, result.error, (states or {}).get(row["trial_id"]))
        row["epochs"] = int(last.get("epoch", 0) or 0)
        best = best_row(history, metric, mode)
        row["best_epoch"] = int(best["epoch"]) if best is not None and "epoch" in best else None
        for name in dict.fromkeys((*spec.objective.metrics, *SHOWN)):
            row[name] = float(best[name]) if best is not None and name in best else math.nan
        for name in (bicubic_twin(m) for m in SHOWN):
            row[name] = float(last[name]) if name in last else math.nan
        if "bicubic_tc" in last:  # video runs: the temporal-consistency error of bicubic
            row["bicubic_tc"] = float(last["bicubic_tc"])
        for name, value in last.items():  # test-set scores of the selected epoch (the final result only)
            if name.startswith("test_") and isinstance(value, (int, float)) and not isinstance(value, bool):
                row[name] = int(value) if name == "test_epoch" else float(value)
        row["d_real_minus_fake"] = (float(last["d_real"]) - float(last["d_fake"])
                                    if "d_real" in last and "d_fake" in last else math.nan)
        row["error"] = _first_line(result.error)
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values(metric, ascending=(mode == "min"), na_position="last").reset_index(drop=True)
    return table


def _trial_id(result) -> str:
    return str(getattr(result, "path", "") or "").rstrip("/").rsplit("/", 1)[-1]


def best_row(history: pd.DataFrame | None, metric: str, mode: str) -> pd.Series | None:
    """The epoch with the best `metric` (the last when none has a value), or None without history."""
    if history is None or history.empty or metric not in history:
        return None
    values = pd.to_numeric(history[metric], errors="coerce")
    if values.notna().sum() == 0:
        return history.iloc[-1]
    return history.loc[values.idxmax() if mode == "max" else values.idxmin()]


def best_epochs(results, spec: StudySpec) -> dict[str, int]:
    """trial id -> its best accepted epoch with a checkpoint (by the first objective), where one exists."""
    metric, mode = spec.objective.metrics[0], spec.objective.modes[0]
    out: dict[str, int] = {}
    for result in results:
        history = result.metrics_dataframe
        trial_id = (result.metrics or {}).get("trial_id")
        if history is None or trial_id is None or "checkpoint_path" not in history:
            continue
        row = best_row(history[history["checkpoint_path"].notna()], metric, mode)
        if row is not None:
            out[trial_id] = int(row["epoch"])
    return out


def _first_line(error: Any) -> str:
    if error is None:
        return ""
    text = str(error).strip().splitlines()
    return text[-1][:160] if text else type(error).__name__


def format_table(spec: StudySpec, table: pd.DataFrame) -> str:
    """The table a person reads at the end of a study (Markdown, so it pastes anywhere)."""
    if table.empty:
        return "(no trials finished)"
    # the selected epoch's test-set PSNR / SSIM per benchmark set, then the epoch they come from
    tests = [c for c in table.columns if c.startswith("test_") and c.endswith(("_psnr", "_ssim"))
             and "_bicubic_" not in c]
    cols = ["trial_id", *spec.space, "seed", "status", "epochs", "best_epoch",
            *dict.fromkeys((*spec.objective.metrics, *SHOWN)), *tests,
            *(["test_epoch"] if tests and "test_epoch" in table else [])]
    shown = table[[c for c in cols if c in table]].copy()
    for name in ("seed", "epochs", "best_epoch", "test_epoch"):  # counts stay counts with a gap (NaN) beside them
        if name in shown:
            shown[name] = pd.to_numeric(shown[name], errors="coerce").round().astype("Int64")
    bicubic = {c: bicubic_twin(c) for c in shown.columns if bicubic_twin(c)}
    ref = {name: table[name].dropna() for name in bicubic.values() if name in table}
    lines = [_md_row(shown.columns)]
    lines.append(_md_row(["---"] * len(shown.columns)))
    for _, r in shown.iterrows():
        lines.append(_md_row(_fmt(v) for v in r.tolist()))
    ref_row = ["bicubic (reference)"] + [
        _fmt(ref[bicubic[c]].iloc[0]) if c in bicubic and bicubic[c] in ref and len(ref[bicubic[c]]) else ""
        for c in shown.columns[1:]]
    lines.append(_md_row(ref_row))
    return "\n".join(lines)


def _md_row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _fmt(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return str(value)

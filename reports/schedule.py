"""Population-based training in a report: the winning model's schedule, its lineage, the population over time.

Under PBT a trial's model may have grown in several trials: after an exploit at epoch e a
trial continues from its donor's epoch-e state. The *lineage* of a model walks back through
those exploits: epochs (e, last] are the trial's own, epochs up to e the donor's, and so on.
The schedule a model was trained with is then, epoch by epoch, the values in force
(`hp/<key>` metrics) of whichever trial held it. Exploit events come from each child run's
`pbt_events.jsonl` (study/pbt.py writes them), read here with the study's MLflow client.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from reports.document import Doc, Table
from reports.figures import palette, save
from study.spec import StudySpec

EVENTS_ARTIFACT = "pbt_events.jsonl"  # as study/pbt.py writes it
HP_PREFIX = "hp/"


def is_pbt(spec: StudySpec) -> bool:
    return spec.scheduler.type == "pbt"


def load_events(tracking_uri: str, trials: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """trial id -> its exploit events, oldest first (trials without an event are left out)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    out: dict[str, list[dict[str, Any]]] = {}
    for row in trials.to_dict("records"):
        if not any(a.path == EVENTS_ARTIFACT for a in client.list_artifacts(row["run_id"])):
            continue
        with tempfile.TemporaryDirectory(prefix="srstudy-report-") as tmp:
            text = Path(client.download_artifacts(row["run_id"], EVENTS_ARTIFACT, tmp)).read_text()
        out[row["trial_id"]] = sorted((json.loads(line) for line in text.splitlines() if line.strip()),
                                      key=lambda e: e["epoch"])
    return out


def lineage(winner: str, last_epoch: int, events: dict[str, list[dict[str, Any]]]) -> list[tuple[str, int, int]]:
    """The winner's model as segments (trial, first epoch, last epoch), oldest first."""
    segments, trial, end = [], winner, last_epoch
    while True:
        before = [e for e in events.get(trial, []) if e["epoch"] < end]
        if not before:
            segments.append((trial, 1, end))
            return segments[::-1]
        event = before[-1]
        segments.append((trial, event["epoch"] + 1, end))
        trial, end = event["donor"], event["epoch"]


def winner_of(history: pd.DataFrame, metric: str, mode: str) -> tuple[str, int] | None:
    """The trial whose last epoch scores best on the objective (PBT's final population), and that epoch."""
    if history.empty or metric not in history:
        return None
    last = history.sort_values("epoch").groupby("trial_id").tail(1).dropna(subset=[metric])
    if last.empty:
        return None
    row = last.loc[last[metric].idxmax() if mode == "max" else last[metric].idxmin()]
    return str(row["trial_id"]), int(row["epoch"])


def schedule_figure(history: pd.DataFrame, segments: list[tuple[str, int, int]], keys: list[str]) -> Figure:
    """One panel per mutated key: the value in force each epoch along the winner's lineage, coloured by trial."""
    fig = Figure(figsize=(7, 1.9 * len(keys) + 0.4))
    axes = fig.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
    colours = dict(zip(dict.fromkeys(t for t, _, _ in segments), palette(len(segments))))
    for ax, key in zip(axes, keys):
        col = HP_PREFIX + key
        for trial, first, last in segments:
            rows = history[(history["trial_id"] == trial) & history["epoch"].between(first, last)].sort_values("epoch")
            if col in rows and rows[col].notna().any():
                ax.step(rows["epoch"], rows[col], where="mid", marker="o", ms=3, color=colours[trial],
                        label=f"{trial} (epochs {first}-{last})")
        for _, first, _ in segments[1:]:
            ax.axvline(first - 0.5, color="k", lw=0.6, ls=":")  # an exploit: the state changed hands
        values = history[col].dropna() if col in history else pd.Series(dtype=float)
        if len(values) and (values > 0).all() and values.max() / values.min() > 20:
            ax.set_yscale("log")
        ax.set_ylabel(key, fontsize=8)
    axes[0].legend(fontsize=7, loc="best")
    axes[-1].set_xlabel("epoch")
    axes[-1].xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle("Schedule of the winning model along its lineage (dotted: exploits)", fontsize=9)
    return fig


def population_figure(history: pd.DataFrame, metric: str, events: dict[str, list[dict[str, Any]]]) -> Figure:
    """The objective of every trial per epoch; an arrow from donor to trial at each exploit."""
    fig = Figure(figsize=(7, 3.6))
    ax = fig.subplots()
    trials = sorted(history["trial_id"].dropna().unique())
    colours = dict(zip(trials, palette(len(trials))))
    for trial in trials:
        rows = history[history["trial_id"] == trial].sort_values("epoch").dropna(subset=[metric])
        x, y = rows["epoch"].to_numpy(float), rows[metric].to_numpy(float)
        # the line breaks where the trial took a donor's state: its next epoch grew from the donor's
        cuts = [i + 1 for i in range(len(x) - 1) if any(e["epoch"] == x[i] for e in events.get(trial, []))]
        ax.plot(np.insert(x, cuts, np.nan), np.insert(y, cuts, np.nan), marker="o", ms=3, lw=1,
                color=colours[trial], label=trial)
    for trial, evs in events.items():
        for e in evs:
            src = history[(history["trial_id"] == e["donor"]) & (history["epoch"] == e["epoch"])]
            dst = history[(history["trial_id"] == trial) & (history["epoch"] == e["epoch"] + 1)]
            if len(src) and len(dst) and metric in src:
                ax.annotate("", xy=(e["epoch"] + 1, float(dst[metric].iloc[0])),
                            xytext=(e["epoch"], float(src[metric].iloc[0])),
                            arrowprops={"arrowstyle": "->", "color": colours.get(trial, "k"), "ls": "--", "lw": 0.8})
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(metric)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(f"Population {metric} per epoch (dashed arrows: donor epoch -> exploiting trial)", fontsize=9)
    return fig


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def pbt_section(doc: Doc, study, fig_dir: Path) -> list[Path]:
    """For a PBT study: the exploit table, the winner's schedule and lineage, the population figure."""
    spec, history = study.spec, study.history
    if not is_pbt(spec) or history.empty:
        return []
    metric, mode = spec.objective.metric, spec.objective.mode  # PBT studies have one objective
    keys = list(spec.scheduler.pbt.mutations)
    events = load_events(study.tracking_uri, study.trials)
    doc.heading("Population-based training")
    found_events = sorted(((e["epoch"], trial, e) for trial, evs in events.items() for e in evs),
                          key=lambda x: (x[0], x[1]))
    rows = [[str(epoch), trial, e["donor"], ", ".join(f"{k} {_fmt(e['old'].get(k))} -> {_fmt(v)}"
                                                      for k, v in e["new"].items())]
            for epoch, trial, e in found_events]
    doc.table(Table(["epoch", "trial", "donor", "values (old -> new)"], rows,
                    caption=f"{len(rows)} exploit(s): after the epoch shown the trial continued from the "
                            "donor's checkpoint of that epoch with the new values.", text_cols=4))
    written = []
    found = winner_of(history, metric, mode)
    if found is not None:
        winner, last = found
        segments = lineage(winner, last, events)
        written.append(save(schedule_figure(history, segments, keys), fig_dir / "pbt_schedule.png"))
        path = " <- ".join(f"{t} (epochs {a}-{b})" for t, a, b in segments[::-1])
        doc.image("figures/pbt_schedule.png", f"The winning trial {winner} (best final {metric}): each mutated "
                                              f"value in force per epoch along its lineage {path}.")
    written.append(save(population_figure(history, metric, events), fig_dir / "pbt_population.png"))
    doc.image("figures/pbt_population.png", f"{metric} of every trial per epoch; dashed arrows: exploits.")
    return written

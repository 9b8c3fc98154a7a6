"""MLflow -> pandas: one study's parent run, spec, trials (params, tags, status) and full metric histories.

This is the only module that reads MLflow (besides `build`, which downloads the chosen
sample grids and logs the finished report). Everything downstream is a pure function of
the `Study` it returns. The logged spec is parsed once, by the study's own parser
(`study.spec.from_dict`), so every default the report relies on is the spec's own.

Frame layout (both keyed by `run_id`, the child run's MLflow id):

`Study.trials`, one row per trial (child run), in start order:
    run_id, run_name, trial_id, status (completed | stopped early | diverged | failed | running),
    run_state (MLflow: RUNNING | FINISHED | FAILED | KILLED), seed, repeat (Int64),
    searched (list of dotted keys), error (str or None), spec_hash, start_time, end_time
    (UTC timestamps), epochs (epochs logged, 0 if none),
    `param.<dotted key>` for every logged param, parsed back from MLflow's strings
    ("0.004" -> 0.004, "None" -> None, "True" -> True).
`Study.history`, one row per (trial, epoch) with epoch = the MLflow step (1-based):
    run_id, trial_id, epoch, one float column per logged metric (NaN where a metric was
    not logged that epoch), grid_artifact (artifact path of that epoch's `sample_grid`
    PNG, or None).

`search_runs` keeps only each metric's last value, so histories come from
`MlflowClient.get_metric_history`; a resumed trial may log an epoch twice, and the later
value (by timestamp) wins.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from mlflow.tracking import MlflowClient

from study.spec import StudySpec, from_dict
from study.tracking import (ERROR, GRID_KEY, PARENT, REPEAT, ROLE, SEARCHED, SEED, SPEC_HASH, STATUS, TRIAL_ID,
                            resolve_tracking_uri as study_tracking_uri)
from trainables.errors import UserError, check_sqlite_store, first_line

PARAM_PREFIX = "param."
# MLflow state -> trial status, for a child run that never got its srstudy.status tag
_STATE_STATUS = {"RUNNING": "running", "SCHEDULED": "running", "FINISHED": "completed",
                 "FAILED": "failed", "KILLED": "failed"}
# log_image's file names: images/<key>+step+<n>+timestamp+<ms>+<uuid>.png ('%' in older MLflow)
_IMAGE = re.compile(r"^images/(?P<key>.+?)[+%]step[+%](?P<step>\d+)[+%]timestamp[+%](?P<ts>\d+)[+%][^+%/]+\.png$")
_PAGE = 1000


@dataclass
class Study:
    """A study as read from MLflow; see the module docstring for the frames' columns."""

    name: str
    tracking_uri: str
    experiment_id: str
    parent: dict[str, Any]  # run_id, status, start_time, end_time, description, tags
    spec: StudySpec  # the parent's spec.yaml; a default spec when it is missing or invalid (see notes)
    plan: list[str]  # the plan the study printed at its start (plan.txt; [] when missing)
    trials: pd.DataFrame
    history: pd.DataFrame
    notes: list[str] = field(default_factory=list)  # things the loader had to guess or skip

    @property
    def unfinished(self) -> bool:
        """The parent still runs, or some trial never reached a final status."""
        return self.parent["status"] == "RUNNING" or bool((self.trials["status"] == "running").any())


def resolve_tracking_uri(cli: str | None) -> str:
    """--tracking-uri, then MLFLOW_TRACKING_URI, then `sqlite:///<cwd>/mlflow.db` (absolute): the study's rule."""
    return study_tracking_uri(cli, None)


def parse_param(text: str) -> Any:
    """An MLflow param string back to the value it was written from (str(value))."""
    if text == "None":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _tidy(values: list[Any]) -> list[Any]:
    """One type per param column (parquet needs it): numbers stay numbers, any text makes all text."""
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int, bool} or kinds <= {int, float} or len(kinds) <= 1:
        return values
    return [None if v is None else str(v) for v in values]


def find_parent(client: MlflowClient, name: str, parent_run_id: str | None = None) -> tuple[Any, Any, list[str]]:
    """The study's experiment and parent run (the latest one unless `parent_run_id` is given)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None or experiment.lifecycle_stage == "deleted":
        known = sorted(e.name for e in client.search_experiments() if e.name != "Default")
        hint = f"studies there: {', '.join(known)}" if known else "it holds no studies"
        raise UserError(f"no study named {name!r} in this MLflow store ({hint})")
    notes: list[str] = []
    if parent_run_id is not None:
        run = client.get_run(parent_run_id)
        if run.info.experiment_id != experiment.experiment_id or run.data.tags.get(ROLE) != "study":
            raise UserError(f"--parent-run-id {parent_run_id}: not a study parent run of {name!r}")
        return experiment, run, notes
    parents = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{ROLE}` = 'study'",
                                 order_by=["attributes.start_time DESC"], max_results=100)
    if not parents:
        raise UserError(f"experiment {name!r} has no srstudy parent run (tag {ROLE}=study); "
                        "was it written by python -m study.run?")
    if len(parents) > 1:
        notes.append(f"{len(parents)} parent runs in experiment {name!r}; reporting the latest "
                     f"({parents[0].info.run_id}); pick another with --parent-run-id")
    return experiment, parents[0], notes


def _children(client: MlflowClient, experiment_id: str, parent_id: str) -> list[Any]:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=f"tags.`{PARENT}` = '{parent_id}'",
                                  order_by=["attributes.start_time ASC"], max_results=_PAGE, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _artifact_text(client: MlflowClient, run_id: str, name: str) -> str | None:
    try:
        return Path(client.download_artifacts(run_id, name)).read_text()
    except Exception:  # a missing artifact raises store-specific errors; the report says so
        return None


def _spec(client: MlflowClient, run_id: str, name: str, trials: int, notes: list[str]) -> StudySpec:
    """The parent's spec.yaml, validated; else a default spec named after the study, and a note saying why."""
    text = _artifact_text(client, run_id, "spec.yaml")
    why = "the parent run has no spec.yaml artifact"
    if text is not None:
        try:
            return from_dict(yaml.safe_load(text))
        except (UserError, yaml.YAMLError) as exc:  # e.g. a study logged by a version whose spec has changed
            why = f"the parent run's spec.yaml does not validate with this version ({first_line(exc)})"
    notes.append(f"{why}: searched keys come from the trials' tags, the objective defaults to maximising "
                 "val_psnr, and no claims are judged")
    return StudySpec(name=name, trials=trials)


def grid_artifacts(client: MlflowClient, run_id: str) -> dict[int, str]:
    """epoch -> artifact path of that epoch's sample grid (the latest one when logged twice)."""
    try:
        files = client.list_artifacts(run_id, "images")
    except Exception:
        return {}
    grids = [m for m in (_IMAGE.match(f.path) for f in files) if m and m["key"] == GRID_KEY]
    found: dict[int, str] = {}
    for m in sorted(grids, key=lambda m: -int(m["ts"])):  # newest first: the first one per epoch is kept
        found.setdefault(int(m["step"]), m.string)
    return found


def _history(client: MlflowClient, run: Any) -> pd.DataFrame:
    rid = run.info.run_id
    per_step: dict[int, dict[str, float]] = {}
    for key in sorted(run.data.metrics):
        for m in sorted(client.get_metric_history(rid, key), key=lambda m: m.timestamp):  # the latest value wins
            per_step.setdefault(int(m.step), {})[key] = float(m.value)
    grids = grid_artifacts(client, rid)
    epochs = sorted(set(per_step) | set(grids))
    rows = [{"run_id": rid, "trial_id": run.data.tags.get(TRIAL_ID), "epoch": e, **per_step.get(e, {}),
             "grid_artifact": grids.get(e)} for e in epochs]
    return pd.DataFrame(rows)


def _int_tag(text: str | None) -> int | None:
    return int(text) if text and text.lstrip("-").isdigit() else None


def _timestamp(ms: int | None) -> pd.Timestamp:
    """An MLflow run time (ms since the epoch; None or 0 when unset) as a UTC timestamp."""
    return pd.to_datetime(ms, unit="ms", utc=True) if ms else pd.NaT


def _trial_row(run: Any, epochs: int) -> dict[str, Any]:
    """A row of `Study.trials`: the run's tags and times, then its params parsed back from text."""
    tags, info = run.data.tags, run.info
    status = tags.get(STATUS) or _STATE_STATUS.get(info.status, "failed")
    try:
        searched = list(json.loads(tags.get(SEARCHED, "[]")))
    except json.JSONDecodeError:
        searched = []
    return {
        "run_id": info.run_id, "run_name": info.run_name, "trial_id": tags.get(TRIAL_ID, info.run_id[:8]),
        "status": status, "run_state": info.status, "seed": _int_tag(tags.get(SEED)),
        "repeat": _int_tag(tags.get(REPEAT)), "searched": searched,
        "error": tags.get(ERROR), "spec_hash": tags.get(SPEC_HASH),
        "start_time": _timestamp(info.start_time), "end_time": _timestamp(info.end_time), "epochs": epochs,
        **{PARAM_PREFIX + k: parse_param(v) for k, v in run.data.params.items()},
    }


def load_study(name: str, tracking_uri: str, parent_run_id: str | None = None) -> Study:
    """Read one study. Raises UserError for an unknown study or one without trials."""
    # opening a missing SQLite file would silently create an empty store (and its schema)
    check_sqlite_store(tracking_uri, "tracking URI", must_exist=True)
    client = MlflowClient(tracking_uri)
    experiment, parent, notes = find_parent(client, name, parent_run_id)
    pid = parent.info.run_id
    runs = _children(client, experiment.experiment_id, pid)
    if not runs:
        raise UserError(f"study {name!r} (parent run {pid}, {parent.info.status}) has no trials yet; "
                        "nothing to report")
    spec = _spec(client, pid, name, len(runs), notes)
    # one request per (trial, metric): threads hide an HTTP server's latency (they only slow local SQLite)
    with ThreadPoolExecutor(max_workers=1 if tracking_uri.startswith("sqlite:") else 8) as pool:
        histories = list(pool.map(lambda run: _history(client, run), runs))
    trials = pd.DataFrame([_trial_row(run, int(hist["epoch"].max()) if len(hist) else 0)
                           for run, hist in zip(runs, histories)])
    for col in [c for c in trials if c.startswith(PARAM_PREFIX)]:
        trials[col] = pd.Series(_tidy(trials[col].tolist()), index=trials.index, dtype=object)
    trials = trials.astype({"seed": "Int64", "repeat": "Int64"})
    history = pd.concat([h for h in histories if len(h)], ignore_index=True) if any(len(h) for h in histories) \
        else pd.DataFrame(columns=["run_id", "trial_id", "epoch", "grid_artifact"])
    history["epoch"] = history["epoch"].astype(int)
    tags = parent.data.tags
    parent_info = {"run_id": pid, "status": parent.info.status, "start_time": _timestamp(parent.info.start_time),
                   "end_time": _timestamp(parent.info.end_time),
                   "description": tags.get("mlflow.note.content", ""), "tags": dict(tags)}
    return Study(name=name, tracking_uri=tracking_uri, experiment_id=experiment.experiment_id,
                 parent=parent_info, spec=spec, plan=(_artifact_text(client, pid, "plan.txt") or "").splitlines(),
                 trials=trials, history=history, notes=notes)


def download_grid(tracking_uri: str, run_id: str, artifact: str, dest: Path) -> Path:
    """Fetch one sample-grid PNG into `dest` (a folder)."""
    dest.mkdir(parents=True, exist_ok=True)
    return Path(MlflowClient(tracking_uri).download_artifacts(run_id, artifact, str(dest)))

"""MLflow tracking: a study is a parent run, each trial a child run with curves, grids and its generator.

The driver creates the experiment and the parent run before any trial starts (fresh
SQLite stores race when many processes create the schema at once). The driver also
writes the child runs, from the results Tune accepted (study/recorder.py says why); a
resumed or retried trial finds its child run by the tag `srstudy.trial_id` and continues
it, logging no epoch twice. After the study the driver settles every child's final
status and logs each trial's best generator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

# the tags the study writes on its runs (reports.load reads them by these names)
ROLE = "srstudy.role"
STUDY = "srstudy.study"
TRIAL_ID = "srstudy.trial_id"
STATUS = "srstudy.status"
SPEC_HASH = "srstudy.spec_hash"
SEARCHED = "srstudy.searched"
SEED = "srstudy.seed"
REPEAT = "srstudy.repeat"
ERROR = "srstudy.error"
GIT_COMMIT = "srstudy.git_commit"
PARENT = "mlflow.parentRunId"
GRID_KEY = "sample_grid"
# MLflow run states for the trial statuses the study table uses
RUN_STATE = {"completed": "FINISHED", "stopped early": "FINISHED", "diverged": "FINISHED", "failed": "FAILED",
             "interrupted": "KILLED"}


def resolve_tracking_uri(cli: str | None, spec: str | None) -> str:
    """--tracking-uri, then the spec, then MLFLOW_TRACKING_URI, then MLflow's default store.

    The default is MLflow's own `sqlite:///mlflow.db`, made absolute so Ray workers (which
    run in other folders) write into the same file a bare `mlflow ui` here serves.
    """
    uri = cli or spec or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path('mlflow.db').resolve()}"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class StudyTracker:
    """The driver's side: experiment, parent run, final table, child-run reconciliation."""

    def __init__(self, uri: str, study: str):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        self.uri = uri
        self.study = study
        mlflow.set_tracking_uri(uri)
        self.client = MlflowClient(uri)
        experiment = self.client.get_experiment_by_name(study)
        if experiment is not None and experiment.lifecycle_stage == "deleted":
            self.client.restore_experiment(experiment.experiment_id)
        self.experiment_id = (experiment.experiment_id if experiment is not None
                              else self.client.create_experiment(study))
        # marks the experiment as model training (MLflow's UI still opens experiments on its
        # GenAI overview: the runs are under "Model training" / the runs URL, see README)
        self.client.set_experiment_tag(self.experiment_id, "mlflow.experimentKind", "custom_model_development")
        self.parent_run_id: str | None = None

    def find_parent(self, spec_hash: str) -> str | None:
        """The parent run a `--resume` continues: this study's latest run of the same spec.

        Found from MLflow itself (tags), not from a file beside the results, so a study whose
        results live on object storage resumes into the same parent and child runs. A finished
        parent is reopened too: `--resume` of a finished study (to retry its failed trials, or
        run twice) keeps one parent run.
        """
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{ROLE}` = 'study' and tags.`{STUDY}` = '{self.study}' "
                          f"and tags.`{SPEC_HASH}` = '{spec_hash}'",
            order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0].info.run_id if runs else None

    def start(self, spec_yaml: str, plan: list[str], spec_hash: str, description: str,
              resume_run_id: str | None = None) -> str:
        """Create (or, on resume, reopen) the parent run; returns its id."""
        if resume_run_id is not None:
            self.client.update_run(resume_run_id, status="RUNNING")
            self.parent_run_id = resume_run_id
            return resume_run_id
        tags = {ROLE: "study", STUDY: self.study, SPEC_HASH: spec_hash,
                "mlflow.note.content": description or f"srstudy study {self.study}"}
        commit = git_commit()
        if commit:
            tags[GIT_COMMIT] = commit
        run = self.client.create_run(self.experiment_id, run_name=f"study {self.study}", tags=tags)
        self.parent_run_id = run.info.run_id
        self.client.log_text(self.parent_run_id, spec_yaml, "spec.yaml")
        self.client.log_text(self.parent_run_id, "\n".join(plan) + "\n", "plan.txt")
        return self.parent_run_id

    def worker_settings(self, spec_hash: str) -> dict[str, Any]:
        """What each trial's rank-0 worker needs to log its child run."""
        return {"uri": self.uri, "experiment_id": self.experiment_id, "parent_run_id": self.parent_run_id,
                "study": self.study, "spec_hash": spec_hash, "git_commit": git_commit()}

    def children(self) -> dict[str, Any]:
        """trial id -> child run, for this study's parent run."""
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{PARENT}` = '{self.parent_run_id}'",
                                       max_results=5000)
        return {r.data.tags.get(TRIAL_ID): r for r in runs}

    def settle(self, table, generators: dict[str, str]) -> set[str]:
        """Final status tag and run state for every child, and its best accepted epoch's generator (trial id ->
        folder or URI) as a model; returns the trials whose generator MLflow holds."""
        logged = set()
        children = self.children()
        for row in table.to_dict("records"):
            run = children.get(row["trial_id"])
            if run is None:
                continue
            status = row["status"]
            rid = run.info.run_id
            self.client.set_tag(rid, STATUS, status)
            if row.get("error"):
                self.client.set_tag(rid, ERROR, str(row["error"])[:500])
            best = generators.get(row["trial_id"])
            if run.data.tags.get("srstudy.model_logged"):
                logged.add(row["trial_id"])
            elif best:
                try:
                    log_generator(rid, best)
                    self.client.set_tag(rid, "srstudy.model_logged", "true")
                    logged.add(row["trial_id"])
                except Exception as exc:  # the table matters more than one model upload
                    print(f"warning: trial {row['trial_id']}: could not log its generator to MLflow "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})", file=sys.stderr)
            if run.info.status != RUN_STATE[status] or run.info.end_time is None:
                self.client.set_terminated(rid, status=RUN_STATE[status])
        return logged

    def finish(self, status: str, table_md: str | None = None, table_parquet: str | None = None) -> None:
        """status: FINISHED, FAILED or KILLED."""
        if self.parent_run_id is None:
            return
        if table_md is not None:
            self.client.log_text(self.parent_run_id, table_md + "\n", "results.md")
        if table_parquet is not None and Path(table_parquet).is_file():
            self.client.log_artifact(self.parent_run_id, table_parquet)
        self.client.set_terminated(self.parent_run_id, status=status)


def log_generator(run_id: str, folder: str) -> str:
    """Log a generator folder (generator.pt + config.yaml: a path or a storage URI, e.g. the study's
    copy of a trial's best epoch) to its run as plain files, never a pickled module.

    `generator/generator.pt` (the state dict, loads with `torch.load(weights_only=True)`)
    and `generator/config.yaml` (the trial config that builds it), as run artifacts and as
    an MLflow logged model named `generator` of the run. Load it with (README, MLflow):
    `trainables.checkpoint.generator_from_folder(mlflow.artifacts.download_artifacts("runs:/<run id>/generator"))`.
    Returns the logged model's id.
    """
    import tempfile

    from pyarrow import fs as pafs

    from trainables.checkpoint import CONFIG_FILE, GENERATOR_FILE, generator_from_folder

    client = MlflowClient()
    filesystem, path = pafs.FileSystem.from_uri(folder if "://" in folder else str(Path(folder).resolve()))
    with tempfile.TemporaryDirectory(prefix="srstudy-generator-") as tmp:
        for name in (GENERATOR_FILE, CONFIG_FILE):
            with filesystem.open_input_stream(f"{path}/{name}") as src:
                (Path(tmp) / name).write_bytes(src.read())
        generator_from_folder(tmp)  # loads: a torn or foreign folder is refused before MLflow holds it
        client.log_artifacts(run_id, tmp, artifact_path="generator")
        model = client.create_logged_model(client.get_run(run_id).info.experiment_id, name="generator",
                                           source_run_id=run_id, model_type="srstudy-generator",
                                           tags={"srstudy.format": "state_dict+config"})
        client.log_model_artifacts(model.model_id, tmp)
        client.finalize_logged_model(model.model_id, "READY")
    return model.model_id


class TrialTracker:
    """One trial's child run: params, per-epoch metrics and sample grids (written by the driver)."""

    def __init__(self, uri: str, experiment_id: str, parent_run_id: str, study: str, spec_hash: str,
                 git_commit: str | None, trial_id: str, trial_name: str, sampled: dict[str, Any], repeat: int):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        self.client = MlflowClient(uri)
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.study = study
        self.trial_id = trial_id
        self.tags = {PARENT: parent_run_id, ROLE: "trial", STUDY: study, TRIAL_ID: trial_id,
                     SPEC_HASH: spec_hash, REPEAT: str(repeat),
                     SEARCHED: json.dumps(sorted(sampled))}
        if git_commit:
            self.tags[GIT_COMMIT] = git_commit
        self.trial_name = trial_name
        self.run_id: str | None = None

    def start(self, cfg) -> str:
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TRIAL_ID}` = '{self.trial_id}' and tags.`{PARENT}` = '{self.parent_run_id}'",
            max_results=1)
        self.logged: set[int] = set()
        if found:  # a resumed or retried trial continues its own child run
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            # the epochs it already holds (phase_gan is logged for every epoch)
            self.logged = {m.step for m in self.client.get_metric_history(self.run_id, "phase_gan")}
        else:
            run = self.client.create_run(self.experiment_id, run_name=self.trial_name,
                                         tags={**self.tags, SEED: str(cfg.seed)})
            self.run_id = run.info.run_id
            params = cfg.flat()
            self.client.log_batch(self.run_id, params=[mlflow.entities.Param(k, str(v)) for k, v in params.items()])
        self.client.set_tag(self.run_id, STATUS, "running")
        return self.run_id

    def has_epoch(self, epoch: int) -> bool:
        return epoch in self.logged

    def log_epoch(self, metrics: dict[str, Any], grid=None) -> None:
        """One epoch's numeric metrics at step = epoch, and its sample grid (a PIL image, else the
        file at metrics['grid_path']) as the image `sample_grid` of that step."""
        step = int(metrics["epoch"])
        numeric = {k: float(v) for k, v in metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch"}
        numeric["phase_gan"] = 1.0 if metrics.get("phase") == "gan" else 0.0
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[mlflow.entities.Metric(k, v, now, step)
                                                    for k, v in numeric.items()])
        self.logged.add(step)
        path = metrics.get("grid_path")
        if grid is None and path and Path(path).is_file():
            from PIL import Image

            grid = Image.open(path)
        if grid is not None:
            # per-step images under one key: the run page's image grid steps through them
            self.client.log_image(self.run_id, grid, key=GRID_KEY, step=step)
        if metrics.get("status") in ("completed", "diverged"):
            self.client.set_tag(self.run_id, STATUS, metrics["status"])

    def finish(self, status: str, error: str | None = None) -> None:
        if self.run_id is None:
            return
        self.client.set_tag(self.run_id, STATUS, status)
        if error:
            self.client.set_tag(self.run_id, ERROR, error[:500])

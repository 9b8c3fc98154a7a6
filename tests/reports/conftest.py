"""A real MLflow store (temp SQLite) holding studies with known trials, logged the way study/tracking.py logs them.

Studies:
- demo: single objective (val_psnr, max), loss.family x loss.beta, 2 repeats; groups
  lsgan/0.01 (seeds 0, 1: best PSNR 30.0 and 31.0, both at epoch 2 of 3), bce/0.001
  (one stopped early, one diverged) and bce/0.05 (one failed trial with no metrics).
- multi: two objectives (val_psnr max, val_hf_err min) over two continuous params.
- running: the parent still RUNNING, one trial still running, one searched categorical.
- empty: a parent run without trials.  orphan: an experiment without a parent run.
- legacy: demo's trials under a spec.yaml this version no longer validates (the report's default spec).
The store is built once per session: MLflow's schema migration takes seconds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

NAN = float("nan")
BICUBIC = {"bicubic_psnr": 27.5, "bicubic_ssim": 0.78, "bicubic_hf": 0.3, "bicubic_hf_err": 0.7, "bicubic_mse": 0.01}


@dataclass
class TrialSpec:
    trial_id: str
    sampled: dict
    repeat: int
    status: str
    metrics: dict = field(default_factory=dict)  # name -> per-epoch values (epoch 1..n); NaN = not logged
    error: str | None = None


def grid_color(trial_index: int, epoch: int) -> tuple[int, int, int]:
    """Each logged grid is one flat colour that names its trial and epoch."""
    return (10 + 40 * trial_index, 60 * epoch, 200)


def _epochs(psnr, ssim, hf, d_real, d_fake, mse=None):
    n = len(psnr)
    m = {"val_psnr": psnr, "val_ssim": ssim, "val_hf": hf, "val_hf_err": [abs(1 - v) for v in hf],
         "val_mse": mse or [0.01 - 0.001 * e for e in range(n)], "d_real": d_real, "d_fake": d_fake,
         "phase_gan": [0.0] + [1.0] * (n - 1), "train_time_s": [1.0, 2.0, 3.0][:n],
         "images_per_s": [100.0] * n, "diverged": [0.0] * n}
    m.update({k: [v] * n for k, v in BICUBIC.items()})
    return m


DEMO = [
    TrialSpec("a0", {"loss.family": "lsgan", "loss.beta": 0.01}, 0, "completed",
              _epochs([29.0, 30.0, 29.5], [0.80, 0.85, 0.90], [0.5, 0.7, 0.9], [0.0, 0.6, 0.7], [0.0, 0.4, 0.3])),
    TrialSpec("a1", {"loss.family": "lsgan", "loss.beta": 0.01}, 1, "completed",
              _epochs([30.0, 31.0, 30.5], [0.81, 0.87, 0.88], [0.6, 0.8, 0.9], [0.0, 0.7, 0.8], [0.0, 0.3, 0.2])),
    TrialSpec("b0", {"loss.family": "bce", "loss.beta": 0.001}, 0, "stopped early",
              _epochs([28.0, 28.5], [0.70, 0.75], [0.4, 0.45], [0.0, 0.6], [0.0, 0.5])),
    TrialSpec("b1", {"loss.family": "bce", "loss.beta": 0.001}, 1, "diverged",
              {**_epochs([27.0, 20.0, 15.0], [0.72, 0.5, 0.3], [0.4, 2.0, 3.0], [0.0, 0.9, 1.0], [0.0, 0.1, 0.0]),
               "diverged": [0.0, 0.0, 1.0]}),
    TrialSpec("c0", {"loss.family": "bce", "loss.beta": 0.05}, 0, "failed", {}, error="RuntimeError: out of memory"),
]
MULTI = [  # (val_psnr, val_hf_err): the front is m0, m1, m3; m2 is dominated by m0
    TrialSpec(f"m{i}", {"loss.beta": beta, "optim.lr_g": lr}, 0, "completed",
              {**_epochs([psnr], [0.8], [1 - err], [0.0], [0.0]), "val_hf_err": [err]})
    for i, (beta, lr, psnr, err) in enumerate([(0.001, 1e-4, 30.0, 0.5), (0.01, 3e-4, 29.0, 0.3),
                                               (0.02, 2e-4, 28.0, 0.6), (0.05, 5e-4, 31.0, 0.9)])
]
RUNNING = [
    TrialSpec("r0", {"loss.family": "lsgan"}, 0, "completed",
              _epochs([29.0, 29.5], [0.8, 0.81], [0.5, 0.6], [0.0, 0.6], [0.0, 0.4])),
    TrialSpec("r1", {"loss.family": "bce"}, 0, "running", _epochs([28.0], [0.7], [0.4], [0.0], [0.0])),
]
SPACE_DEMO = {"loss.family": {"type": "categorical", "values": ["bce", "lsgan"]},
              "loss.beta": {"type": "loguniform", "low": 1e-4, "high": 0.1}}


def spec_of(**fields):
    """A validated `StudySpec` for the pure functions' tests: `fields` over a one-key space and 2 trials."""
    from study.spec import from_dict

    return from_dict({"name": "t", "space": {"loss.family": {"type": "categorical", "values": ["bce", "lsgan"]}},
                      "trials": 2, **fields})


@dataclass
class Store:
    uri: str
    root: Path
    parents: dict = field(default_factory=dict)  # study -> parent run id
    runs: dict = field(default_factory=dict)  # trial id -> child run id


def _log_study(client, store: Store, raw_spec: dict, trials: list[TrialSpec], parent_status: str,
               grids: bool = True) -> None:
    import mlflow
    from PIL import Image

    from study.plan import plan
    from study.spec import from_dict, spec_hash, trial_config
    from study.tracking import ERROR, PARENT, REPEAT, ROLE, SEARCHED, SEED, SPEC_HASH, STATUS, STUDY, TRIAL_ID

    spec = from_dict(raw_spec)
    exp = client.create_experiment(spec.name, artifact_location=str(store.root / "artifacts" / spec.name))
    parent = client.create_run(exp, run_name=f"study {spec.name}", tags={
        ROLE: "study", STUDY: spec.name, SPEC_HASH: spec_hash(spec),
        "mlflow.note.content": spec.description})
    pid = parent.info.run_id
    client.log_text(pid, spec.dump_yaml(), "spec.yaml")
    client.log_text(pid, "\n".join(plan(spec)) + "\n", "plan.txt")  # as StudyTracker.start logs both
    store.parents[spec.name] = pid
    for index, t in enumerate(trials):
        cfg = trial_config(spec, t.sampled, t.repeat)
        run = client.create_run(exp, run_name=f"trial_{t.trial_id}", tags={
            PARENT: pid, ROLE: "trial", STUDY: spec.name,
            TRIAL_ID: t.trial_id, SPEC_HASH: spec_hash(spec), REPEAT: str(t.repeat),
            SEARCHED: json.dumps(sorted(t.sampled)), SEED: str(cfg.seed)})
        rid = run.info.run_id
        store.runs[t.trial_id] = rid
        client.log_batch(rid, params=[mlflow.entities.Param(k, str(v)) for k, v in cfg.flat().items()])
        n = max((len(v) for v in t.metrics.values()), default=0)
        for epoch in range(1, n + 1):
            values = {k: float(v[epoch - 1]) for k, v in t.metrics.items() if not np.isnan(v[epoch - 1])}
            client.log_batch(rid, metrics=[mlflow.entities.Metric(k, v, 1000 * epoch, epoch)
                                           for k, v in values.items()])
            if grids:
                tile = np.zeros((8, 12, 3), np.uint8) + np.array(grid_color(index, epoch), np.uint8)
                client.log_image(rid, Image.fromarray(tile), key="sample_grid", step=epoch)
        client.set_tag(rid, STATUS, t.status)
        if t.error:
            client.set_tag(rid, ERROR, t.error)
        if t.status != "running":
            client.set_terminated(rid, status="FAILED" if t.status == "failed" else "FINISHED")
    if parent_status != "RUNNING":
        client.set_terminated(pid, status=parent_status)


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Store:
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    s = Store(uri=f"sqlite:///{root}/mlflow.db", root=root)
    client = MlflowClient(s.uri)
    _log_study(client, s, {"name": "demo", "description": "Which adversarial loss, at which beta?",
                           "space": SPACE_DEMO, "trials": 3, "repeats": 2}, DEMO, "FINISHED")
    # a resumed trial re-logs epoch 3: the later value (by timestamp) must win
    import mlflow
    client.log_batch(s.runs["a0"], metrics=[mlflow.entities.Metric("val_psnr", 10.0, 500, 3)])
    _log_study(client, s, {"name": "multi", "description": "PSNR against spectral error.",
                           "space": {"loss.beta": {"type": "uniform", "low": 0.0, "high": 0.1},
                                     "optim.lr_g": {"type": "loguniform", "low": 1e-5, "high": 1e-3}},
                           "objective": {"metrics": ["val_psnr", "val_hf_err"], "modes": ["max", "min"]},
                           "searcher": {"algorithm": "nsga2"}, "trials": 4}, MULTI, "FINISHED", grids=False)
    _log_study(client, s, {"name": "running", "description": "Still going.",
                           "space": {"loss.family": {"type": "categorical", "values": ["bce", "lsgan"]}},
                           "trials": 2}, RUNNING, "RUNNING")
    _log_study(client, s, {"name": "empty", "space": {"loss.family": {"type": "categorical", "values": ["bce"]}},
                           "trials": 1}, [], "FAILED")
    _log_study(client, s, {"name": "legacy", "space": SPACE_DEMO, "trials": 3, "repeats": 2}, DEMO, "FINISHED",
               grids=False)
    client.log_text(s.parents["legacy"], "name: legacy\nspace: {loss.old_key: {type: categorical, values: [1]}}\n",
                    "spec.yaml")  # overwrites the logged spec, as an older version might have written it
    client.create_experiment("orphan", artifact_location=str(root / "artifacts" / "orphan"))
    return s


@pytest.fixture(name="grid_color")
def grid_color_fixture():
    return grid_color


@pytest.fixture(scope="session")
def demo(store):
    from reports.load import load_study

    return load_study("demo", store.uri)


@pytest.fixture(scope="session")
def multi(store):
    from reports.load import load_study

    return load_study("multi", store.uri)

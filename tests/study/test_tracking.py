"""MLflow tracking: the smoke study read back from the store, a real `mlflow server` over HTTP,
and four trials logging at once into a fresh default store."""

import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from study.tracking import StudyTracker, TrialTracker
from trainables.config import load_config

def study_runs(uri: str, name: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("srstudy.role") == "study"]
    kids = [r for r in runs if r.data.tags.get("srstudy.role") == "trial"]
    return client, parents, kids


@pytest.mark.slow
@pytest.mark.timeout(1800)  # may include the session's smoke study (tests/conftest.py)
def test_smoke_study_in_the_default_store(smoke_study):
    uri = f"sqlite:///{smoke_study / 'mlflow.db'}"
    client, parents, kids = study_runs(uri, "smoke")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"spec.yaml", "plan.txt", "results.md", "results.parquet"} <= artifacts
    assert len(kids) == 4  # smoke.yaml: 4 trials
    table = pd.read_parquet(smoke_study / "study_results" / "smoke" / "results.parquet")
    for kid in kids:
        assert kid.data.tags["mlflow.parentRunId"] == parent.info.run_id
        status = kid.data.tags["srstudy.status"]
        assert status in ("completed", "stopped early")
        assert kid.info.status == "FINISHED"
        epochs = [m.step for m in client.get_metric_history(kid.info.run_id, "val_psnr")]
        # MLflow holds exactly the epochs Tune accepted: the results table's, one point each
        row = table[table["trial_id"] == kid.data.tags["srstudy.trial_id"]].iloc[0]
        assert status == row["status"] and epochs == list(range(1, int(row["epochs"]) + 1))
        if status == "completed":
            assert len(epochs) == 3
        assert kid.data.params["model.g_channels"] == "8" and kid.data.params["scale"] == "2"
        images = client.list_artifacts(kid.info.run_id, "images")
        assert len(images) >= len(epochs)  # a sample grid per epoch (MLflow stores a few files per step)
    models = client.search_logged_models([parent.info.experiment_id])
    assert {m.source_run_id for m in models} == {k.info.run_id for k in kids}  # each trial's best generator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("mlflow server did not come up")
    yield url
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_study_logs_over_http_to_a_real_mlflow_server(tmp_path, mlflow_server):
    import yaml

    from tests.study.processes import smoke_spec, study_env

    spec = smoke_spec(name="http", trials=2, max_concurrent=2, scheduler={"type": "none"})
    spec["base"]["schedule.gan_epochs"] = 1
    path = tmp_path / "http.yaml"
    path.write_text(yaml.safe_dump(spec))
    done = subprocess.run([sys.executable, "-m", "study.run", str(path), "--tracking-uri", mlflow_server],
                          cwd=tmp_path, env=study_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to a local store
    client, parents, kids = study_runs(mlflow_server, "http")
    assert len(parents) == 1 and len(kids) == 2
    for kid in kids:
        assert len(client.get_metric_history(kid.info.run_id, "val_psnr")) == 2
        assert kid.data.tags["srstudy.status"] == "completed"
    # artifacts went through the server's proxy into its artifact folder
    assert any((tmp_path / "artifacts").rglob("*.png"))


EPOCHS = 12


def _log_trial(settings: dict, grid_dir: str, trial: int, barrier) -> None:
    cfg = load_config(overrides={"seed": trial})
    tracker = TrialTracker(**settings, trial_id=f"t{trial}", trial_name=f"trial {trial}", sampled={}, repeat=0)
    barrier.wait()  # all four start logging at the same moment
    tracker.start(cfg)
    grid = Path(grid_dir) / f"grid{trial}.png"
    Image.fromarray(np.full((8, 8, 3), trial * 40, np.uint8)).save(grid)
    for epoch in range(1, EPOCHS + 1):
        metrics = {"epoch": epoch, "phase": "gan", "status": "running", "val_psnr": 30.0 + trial + epoch / 100,
                   **{f"m{i}": float(i * epoch) for i in range(20)}, "grid_path": str(grid)}
        tracker.log_epoch(metrics, None)
    tracker.finish("completed")


def test_four_trials_log_at_once_into_a_fresh_default_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    driver = StudyTracker(uri, "concurrent")  # the driver creates the schema and experiment first
    driver.start("name: concurrent\n", ["plan"], "abc", "four writers")
    settings = driver.worker_settings("abc")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_log_trial, args=(settings, str(tmp_path), i, barrier)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
        assert p.exitcode == 0
    client, parents, kids = study_runs(uri, "concurrent")
    assert len(kids) == 4
    for kid in kids:
        for name in ("val_psnr", "m0", "m19"):
            assert len(client.get_metric_history(kid.info.run_id, name)) == EPOCHS, name
        history = client.get_metric_history(kid.info.run_id, "m7")
        assert sorted(m.value for m in history) == [7.0 * e for e in range(1, EPOCHS + 1)]
        images = client.list_artifacts(kid.info.run_id, "images")
        assert len(images) >= EPOCHS


def test_logged_generator_is_a_state_dict_and_config_that_loads_with_weights_only(tmp_path, monkeypatch):
    import mlflow
    import torch

    from study.tracking import log_generator
    from trainables import checkpoint
    from trainables.models import build_generator

    monkeypatch.chdir(tmp_path)
    cfg = load_config(overrides={"model.g_channels": 8, "model.g_blocks": 1, "seed": 3})
    torch.manual_seed(3)
    generator = build_generator(cfg).eval()
    ckpt = checkpoint.save(tmp_path / "ckpt", cfg, {"generator": generator.state_dict(), "epoch": 1})
    # the checkpoint itself: tensors and plain values only
    assert torch.load(ckpt / "state.pt", weights_only=True)["epoch"] == 1

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    driver = StudyTracker(uri, "gen")
    parent = driver.start("name: gen\n", ["plan"], "abc", "")
    run_id = MlflowClient(uri).create_run(driver.experiment_id, tags={"mlflow.parentRunId": parent}).info.run_id
    model_id = log_generator(run_id, str(ckpt))

    # the README's one-liner
    cfg2, loaded = checkpoint.generator_from_folder(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/generator"))
    assert cfg2 == cfg
    folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/generator"))
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "generator.pt"]
    weights = torch.load(folder / "generator.pt", weights_only=True)
    assert weights.keys() == generator.state_dict().keys()
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(loaded(lr), generator(lr))
    client = MlflowClient(uri)
    models = client.search_logged_models([driver.experiment_id])
    assert [(m.model_id, m.source_run_id, m.name) for m in models] == [(model_id, run_id, "generator")]
    assert sorted(p.name for p in Path(mlflow.artifacts.download_artifacts(f"models:/{model_id}")).iterdir()) == [
        "config.yaml", "generator.pt"]


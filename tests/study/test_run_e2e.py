"""Real Ray studies on CPU through `python -m study.run`: Optuna + ASHA, a grid with repeats and a
diverging trial, a multi-objective study, a 2-worker (DDP) trial, and --resume after a kill."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from reports.load import grid_artifacts  # how the report scripts read the per-epoch grids
from tests.study.processes import kill_study_after, smoke_spec, study_env


pytestmark = pytest.mark.slow
PROGRESS = re.compile(r"trial\s+\d+/\d+ (\w+) (.*)")  # "[  12s] trial  1/4 <id> epoch 2 gan ..."


def write_spec(folder: Path, spec: dict) -> Path:
    path = folder / f"{spec['name']}.yaml"
    path.write_text(f"# Run: python -m study.run {path.name}\n" + yaml.safe_dump(spec, sort_keys=False))
    return path


def run_study(folder: Path, spec_path: Path, *args: str, timeout: int = 800) -> subprocess.CompletedProcess:
    """`python -m study.run` to its end; past `timeout` s (a deadline, not a measurement) the study
    and the Ray it started are killed and the test fails showing where the study was."""
    cmd = [sys.executable, "-m", "study.run", str(spec_path), *args]
    proc = subprocess.Popen(cmd, cwd=folder, env=study_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the study did not end within {timeout} s:\n{out[-3000:]}\n{err[-3000:]}") from None
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-4000:])
    return done


def results(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(folder / "study_results" / name / "results.parquet")


def children(folder: Path, name: str):
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("srstudy.role") == "study"]
    kids = [r for r in runs if r.data.tags.get("srstudy.role") == "trial"]
    return client, parents, kids


@pytest.mark.timeout(900)
def test_smoke_study_with_optuna_and_asha(tmp_path):
    # sequential trials make the study deterministic: TPE's choices and ASHA's cuts repeat
    spec = smoke_spec(trials=5, max_concurrent=1)
    spec["space"] = {"optim.lr_pretrain": {"type": "loguniform", "low": 1e-5, "high": 3e-3},
                     "loss.family": {"type": "categorical", "values": ["bce", "lsgan", "wgan_gp"]}}
    spec["scheduler"] = {"type": "asha", "grace_period": 1, "reduction_factor": 3}
    done = run_study(tmp_path, write_spec(tmp_path, spec))
    assert done.returncode == 0
    assert "resolved study spec" in done.stdout and "| bicubic (reference) |" in done.stdout
    table = results(tmp_path, "smoke")
    assert len(table) == 5
    assert set(table["status"]) <= {"completed", "stopped early"}
    assert (table["status"] == "stopped early").sum() >= 1
    assert (table["epochs"][table["status"] == "stopped early"] < 3).all()
    assert (table["epochs"][table["status"] == "completed"] == 3).all()
    # sorted by the objective, best first
    assert list(table["val_psnr"]) == sorted(table["val_psnr"], reverse=True)
    assert table["bicubic_psnr"].nunique() == 1

    client, parents, kids = children(tmp_path, "smoke")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(kids) == 5
    assert {k.data.tags["mlflow.parentRunId"] for k in kids} == {parents[0].info.run_id}
    by_trial = {k.data.tags["srstudy.trial_id"]: k for k in kids}
    for row in table.to_dict("records"):
        kid = by_trial[row["trial_id"]]
        assert kid.data.tags["srstudy.status"] == row["status"]
        # MLflow holds exactly the epochs Tune accepted, whatever the timing: an epoch a worker
        # trained after ASHA stopped its trial is not recorded; one point and one grid per epoch
        accepted = list(range(1, row["epochs"] + 1))
        for name in ("val_psnr", "loss_g", "phase_gan"):
            assert [m.step for m in client.get_metric_history(kid.info.run_id, name)] == accepted, name
        assert sorted(grid_artifacts(client, kid.info.run_id)) == accepted
        assert kid.data.params["loss.family"] == row["loss.family"]
        # and its best epoch's generator, as a state dict and config
        assert generator_files(client, kid.info.run_id) == {"generator/config.yaml", "generator/generator.pt"}, \
            done.stderr[-2000:]  # the driver's warning says why a generator was not logged
    # the study's per-epoch generator copies are gone once MLflow holds each finished trial's best
    assert not list((tmp_path / "study_results" / "smoke" / "generators").glob("*/*"))


def generator_files(client: MlflowClient, run_id: str) -> set[str]:
    """The files under a child run's `generator/`.

    MLflow lists `runs:/ID/generator` as the run's artifacts plus those of its logged model
    named `generator`, and looks that model up in the process-wide tracking store, not in
    the client's: point the process at the client's store while listing.
    """
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        return {a.path for a in client.list_artifacts(run_id, "generator")}
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.mark.timeout(900)
def test_grid_with_repeats_and_a_diverging_trial(tmp_path):
    spec = smoke_spec(name="grid", trials=None, repeats=2)
    spec["searcher"] = {"algorithm": "grid", "seed": 0}
    spec["scheduler"] = {"type": "none"}
    spec["base"]["schedule.gan_epochs"] = 1
    spec["space"] = {"runtime.debug_nan_step": {"type": "grid", "values": [None, 5]}}
    done = run_study(tmp_path, write_spec(tmp_path, spec))
    assert done.returncode == 0
    table = results(tmp_path, "grid")
    assert len(table) == 4  # 2 grid points x 2 seeds
    assert sorted(table["seed"]) == [0, 0, 1, 1]
    diverged = table[table["runtime.debug_nan_step"] == 5]
    assert list(diverged["status"]) == ["diverged", "diverged"]
    healthy = table[table["runtime.debug_nan_step"].isna()]
    assert list(healthy["status"]) == ["completed", "completed"]
    assert healthy["val_psnr"].notna().all() and healthy["val_psnr"].gt(20).all()
    _, _, kids = children(tmp_path, "grid")
    assert sorted(k.data.tags["srstudy.status"] for k in kids) == ["completed", "completed", "diverged", "diverged"]


@pytest.mark.timeout(900)
def test_multi_objective_study_with_two_workers(tmp_path):
    spec = smoke_spec(name="pareto", trials=2, max_concurrent=1)
    spec["space"] = {"loss.beta": {"type": "loguniform", "low": 1e-4, "high": 1e-1}}
    spec["searcher"] = {"algorithm": "nsga2", "seed": 0}
    spec["scheduler"] = {"type": "none"}
    spec["objective"] = {"metrics": ["val_psnr", "val_hf"], "modes": ["max", "max"]}
    spec["resources"] = {"workers": 2, "cpus_per_worker": 1}
    spec["base"]["schedule.gan_epochs"] = 1
    done = run_study(tmp_path, write_spec(tmp_path, spec))
    assert done.returncode == 0
    table = results(tmp_path, "pareto")
    assert len(table) == 2 and set(table["status"]) == {"completed"}
    assert table["val_hf"].notna().all() and table["val_psnr"].notna().all()
    _, _, kids = children(tmp_path, "pareto")
    # two DDP workers shared each epoch: images/s is counted over both, and the run kept its steps
    assert all(float(k.data.metrics["g_steps"]) == 2 * (64 // (8 * 2)) for k in kids)


@pytest.mark.timeout(2400)  # four studies back to back (each with its own deadline)
def test_resume_after_the_driver_is_killed(tmp_path):
    spec = smoke_spec(name="resumable", trials=4, max_concurrent=1)
    spec["scheduler"] = {"type": "none"}
    spec_path = write_spec(tmp_path, spec)
    text = kill_study_after(tmp_path, [str(spec_path)], "completed after", timeout=600, count=2)
    done_before = {PROGRESS.search(line).group(1) for line in text.splitlines() if "completed after" in line}
    assert len(done_before) >= 2

    again = run_study(tmp_path, spec_path)  # without --resume: refused, nothing overwritten
    assert again.returncode == 2 and "--resume" in again.stderr

    done = run_study(tmp_path, spec_path, "--resume")
    assert done.returncode == 0
    progress = [m for m in map(PROGRESS.search, done.stdout.splitlines()) if m]
    assert progress, done.stdout[-3000:]  # the resumed study printed its trials' progress
    # finished trials are not trained again: a finished trial whose end the killed driver had
    # not yet recorded is restarted, finds its final checkpoint and only re-reports that epoch
    for match in progress:
        if match.group(1) in done_before and match.group(2).startswith("epoch"):
            assert match.group(2).startswith("epoch 3 "), match.group(0)
    # the trials that had not finished ran to the end in the resumed study
    finished_now = {m.group(1) for m in progress if m.group(2).startswith("completed after 3 epochs")}
    table = results(tmp_path, "resumable")
    assert len(table) == 4 and set(table["status"]) == {"completed"} and set(table["epochs"]) == {3}
    assert set(table["trial_id"]) - done_before <= finished_now
    client, parents, kids = children(tmp_path, "resumable")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(kids) == 4  # no duplicate child runs after the resume
    assert {k.data.tags["srstudy.trial_id"] for k in kids} == set(table["trial_id"])
    for kid in kids:  # one point per (metric, epoch): the re-reported last epoch was not logged twice
        for name in ("val_psnr", "loss_g"):
            assert [m.step for m in client.get_metric_history(kid.info.run_id, name)] == [1, 2, 3], name

    # --resume of a finished study trains nothing: the same parent run (reopened, finished again),
    # no new child run, no new points
    last = run_study(tmp_path, spec_path, "--resume")
    assert last.returncode == 0
    client, parents_again, kids = children(tmp_path, "resumable")
    assert [p.info.run_id for p in parents_again] == [parents[0].info.run_id]
    assert parents_again[0].info.status == "FINISHED" and len(kids) == 4
    for kid in kids:
        assert [m.step for m in client.get_metric_history(kid.info.run_id, "val_psnr")] == [1, 2, 3]


def gpus_here() -> int:
    """GPUs a local Ray would find on this machine (Ray's own count, else torch's)."""
    import torch

    count = torch.cuda.device_count()
    try:
        from ray._private.accelerators import get_accelerator_manager_for_resource

        count = max(count, int(get_accelerator_manager_for_resource("GPU").get_current_node_num_accelerators()))
    except Exception:  # an internal API: torch's count is the fallback
        pass
    return count


@pytest.mark.timeout(600)
def test_bad_spec_and_impossible_resources_fail_fast(tmp_path):
    spec = smoke_spec(name="badres")
    want = gpus_here() + 1  # one more GPU than this machine has, with or without GPUs
    spec["resources"] = {"workers": 1, "cpus_per_worker": 1, "gpus_per_worker": want}
    done = run_study(tmp_path, write_spec(tmp_path, spec), timeout=300)
    assert done.returncode == 2
    assert f"needs {want} GPU(s)" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "study_results" / "badres").exists() or not any(
        (tmp_path / "study_results" / "badres").iterdir())

    spec = smoke_spec(name="badkey")
    spec["space"] = {"loss.betta": {"type": "uniform", "low": 0, "high": 1}}
    done = run_study(tmp_path, write_spec(tmp_path, spec), timeout=300)
    assert done.returncode == 2 and "loss.betta" in done.stderr
    assert done.stderr.strip().count("\n") == 0

"""A real population-based-training study on CPU through `python -m study.run`: exploits through nested
Ray Train trials, the values in force per epoch, exploit events and one MLflow point per (metric, epoch)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from tests.study.processes import kill_study_after, smoke_spec, study_env


pytestmark = pytest.mark.slow


def pbt_spec(trials: int = 2) -> dict:
    spec = smoke_spec(name="pbt_e2e")
    spec["base"]["runtime.threads"] = 1  # one core per trial
    # one decision, after the first GAN epoch (epoch 2); epoch 3 trains with the copied state
    spec["space"] = {"optim.lr_g": {"type": "loguniform", "low": 1e-5, "high": 1e-2},
                     "loss.beta": {"type": "categorical", "values": [0.001, 0.01, 0.1]}}
    spec["searcher"] = {"algorithm": "random", "seed": 0}
    # the bottom half (one trial of two) copies the top half at every decision, and steps (no resampling), so an
    # exploit is certain and its new lr_g is the donor's times 0.8 or 1.2
    spec["scheduler"] = {"type": "pbt", "perturbation_interval": 1, "quantile_fraction": 0.5,
                         "resample_probability": 0.0,
                         "mutations": {"optim.lr_g": {"type": "loguniform", "low": 1e-5, "high": 1e-2},
                                       "loss.beta": [0.001, 0.01, 0.1]}}
    spec["trials"] = trials
    spec["max_concurrent"] = trials
    spec["resources"] = {"workers": 1, "cpus_per_worker": 0.5}
    return spec


def history(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    points = client.get_metric_history(run_id, key)
    steps = [m.step for m in points]
    assert len(steps) == len(set(steps)), f"{key}: more than one point for an epoch: {steps}"
    return {m.step: m.value for m in points}


@pytest.mark.timeout(960)
def test_pbt_study_exploits_through_nested_train_runs(tmp_path):
    path = tmp_path / "pbt_e2e.yaml"
    path.write_text("# Run: python -m study.run pbt_e2e.yaml\n" + yaml.safe_dump(pbt_spec(), sort_keys=False))
    done = subprocess.run([sys.executable, "-m", "study.run", str(path)], cwd=tmp_path, env=study_env(),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "scheduler: pbt on epoch (decisions every 1 epoch(s) from epoch 2" in done.stdout
    check_records(tmp_path)


def check_records(tmp_path: Path) -> None:
    """The finished study's MLflow records, Train runs and checkpoints (see the test above)."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("pbt_e2e")
    kids = {r.data.tags["srstudy.trial_id"]: r for r in client.search_runs([exp.experiment_id], max_results=100)
            if r.data.tags.get("srstudy.role") == "trial"}
    assert len(kids) == 2  # one child run per trial, exploits included

    # one point per (metric, epoch) in every child, for every epoch 1..3
    curves = {}
    for trial_id, run in kids.items():
        for key in run.data.metrics:
            h = history(client, run.info.run_id, key)
            if key in ("val_psnr", "hp/optim.lr_g", "hp/loss.beta"):
                assert sorted(h) == [1, 2, 3], (trial_id, key, sorted(h))
        curves[trial_id] = {k: history(client, run.info.run_id, k)
                            for k in ("val_psnr", "hp/optim.lr_g", "hp/loss.beta", "lr_g_now")}

    # the exploit, from the trials' own records: the bottom trial copied the top one at epoch 2
    from study.pbt import read_events

    events = {t: read_events(client, run.info.run_id) for t, run in kids.items()}
    exploited = {t: e for t, e in events.items() if e}
    assert len(exploited) == 1, events
    for trial_id, (event,) in exploited.items():
        donor = event["donor"]
        assert donor in kids and donor not in exploited and event["epoch"] == 2
        mine, theirs = curves[trial_id], curves[donor]
        assert kids[trial_id].data.tags["srstudy.pbt_donors"] == f"{donor}@2"
        # old values were in force up to epoch 2, the new ones from epoch 3 on (hp/* and the optimiser's rate)
        assert event["old"]["optim.lr_g"] == pytest.approx(mine["hp/optim.lr_g"][2])
        assert event["donor_hp"]["optim.lr_g"] == pytest.approx(theirs["hp/optim.lr_g"][2])
        new_lr = event["new"]["optim.lr_g"]
        assert new_lr / theirs["hp/optim.lr_g"][2] == pytest.approx(0.8) or \
            new_lr / theirs["hp/optim.lr_g"][2] == pytest.approx(1.2)
        assert mine["hp/optim.lr_g"][3] == pytest.approx(new_lr)
        assert mine["lr_g_now"][3] == pytest.approx(new_lr)  # the restored Adam runs at the new rate
        assert mine["hp/loss.beta"][3] == pytest.approx(event["new"]["loss.beta"])

        # its state after epoch 3 grew from the donor's epoch 2: the donor's GAN curve, then its own
        study = tmp_path / "study_results" / "pbt_e2e"
        runs = sorted(p.name for p in (study / "train_runs").iterdir() if p.name.startswith(f"train-{trial_id}-"))
        assert len(runs) >= 2  # a fresh Train run after the exploit, never its first one again
        ckpts = sorted(p for p in (study / "train_runs" / runs[-1]).glob("checkpoint_*") if p.is_dir())
        state = torch.load(ckpts[-1] / "state.pt", map_location="cpu", weights_only=True)
        assert state["epoch"] == 3
        assert state["gan_curve"][0] == pytest.approx(theirs["val_psnr"][2], abs=1e-4)
        assert state["gan_curve"][1] == pytest.approx(mine["val_psnr"][3], abs=1e-4)
        assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(new_lr)
        origin = json.loads((ckpts[-1] / "srstudy_origin.json").read_text())
        assert origin == {"trial_id": trial_id, "epoch": 3, "hp": {"hp/optim.lr_g": pytest.approx(new_lr),
                                                                 "hp/loss.beta": event["new"]["loss.beta"]}}
    # trials never exploited kept their values throughout
    for trial_id in set(kids) - set(exploited):
        assert len(set(curves[trial_id]["hp/optim.lr_g"].values())) == 1


@pytest.mark.timeout(1500)
def test_pbt_study_resumes_after_the_driver_is_killed(tmp_path):
    spec = pbt_spec()
    spec["name"] = "pbt_resume"
    spec["base"]["schedule.gan_epochs"] = 3  # decisions at epochs 2 and 3; the kill comes between them
    path = tmp_path / "pbt_resume.yaml"
    path.write_text("# Run: python -m study.run pbt_resume.yaml\n" + yaml.safe_dump(spec, sort_keys=False))
    # killed once a trial trained on after the first decision; its processes are gone before the
    # resumed study starts a Ray
    kill_study_after(tmp_path, [str(path)], " epoch 3 ", timeout=600)

    done = subprocess.run([sys.executable, "-m", "study.run", str(path), "--resume"], cwd=tmp_path, env=study_env(),
                          capture_output=True, text=True, timeout=720)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    import pandas as pd

    table = pd.read_parquet(tmp_path / "study_results" / "pbt_resume" / "results.parquet")
    assert len(table) == 2 and set(table["status"]) == {"completed"} and set(table["epochs"]) == {4}
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("pbt_resume")
    kids = [r for r in client.search_runs([exp.experiment_id], max_results=100)
            if r.data.tags.get("srstudy.role") == "trial"]
    assert len(kids) == 2
    from study.pbt import read_events

    exploits = 0
    for run in kids:
        for key in ("val_psnr", "hp/optim.lr_g", "lr_g_now"):
            steps = sorted(history(client, run.info.run_id, key))  # one point per epoch, none twice
            assert steps == ([2, 3, 4] if key == "lr_g_now" else [1, 2, 3, 4]), (key, steps)
        for event in read_events(client, run.info.run_id):
            exploits += 1
            h = history(client, run.info.run_id, "hp/optim.lr_g")
            assert h[event["epoch"] + 1] == pytest.approx(event["new"]["optim.lr_g"])
    assert exploits >= 1  # the first decision's, recorded before the kill or after the resume

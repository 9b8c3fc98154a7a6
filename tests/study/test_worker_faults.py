"""Killed Ray Train workers, through `python -m study.run` on a real local Ray: a trial survives a torn
checkpoint and a kill mid-epoch (its restarts resume from the latest complete checkpoint, one MLflow
point per (metric, epoch)); past `resources.max_failures` the trial is recorded failed, with the
reason, and the study goes on to its next trial.

The faults: `checkpoint.TEAR_ENV` makes the worker SIGKILL itself halfway through writing a
checkpoint (a moment an outside kill rarely hits); the test SIGKILLs the worker found by its
parent chain (`study.faults.train_workers`) once the driver has printed a given epoch.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from study import faults
from trainables.checkpoint import TEAR_ENV

pytestmark = pytest.mark.slow


def spec_file(folder: Path, trials: int, max_failures: int, patches: int) -> Path:
    path = faults.write_spec(folder, kills=max_failures, trials=trials)
    spec = yaml.safe_load(path.read_text())
    spec["base"]["schedule.patches_per_epoch"] = patches
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def wait_for_line(log: Path, pattern: str, proc, deadline_s: float) -> None:
    """Until the driver's log has a line matching `pattern` (an event, with a deadline that fails the test)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if re.search(pattern, log.read_text(errors="replace"), re.MULTILINE):
            return
        assert proc.poll() is None, f"the study ended (exit {proc.returncode}) before {pattern!r}:\n" \
                                    + log.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} within {deadline_s} s:\n" + log.read_text()[-3000:])


def finish(proc, log: Path, deadline_s: float = 600) -> None:
    try:
        proc.wait(timeout=deadline_s)
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the study did not end:\n" + log.read_text()[-3000:]) from None
    assert proc.returncode == 0, log.read_text()[-4000:]


def histories(folder: Path, name: str = "faults") -> tuple[MlflowClient, list]:
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name(name)
    kids = [r for r in client.search_runs([exp.experiment_id], max_results=100)
            if r.data.tags.get("srstudy.role") == "trial"]
    return client, kids


@pytest.mark.timeout(900)
def test_a_trial_survives_a_torn_checkpoint_and_a_kill_mid_epoch(tmp_path, monkeypatch):
    # 4 epochs (1 pretrain + 3 GAN); fault 1: epoch 2's checkpoint torn mid-write (the worker dies
    # before reporting it); fault 2: the test kills the worker during epoch 4. max_failures = 2.
    marker = tmp_path / "tear-once"
    marker.touch()
    monkeypatch.setenv(TEAR_ENV, f"2:{marker}")
    spec = spec_file(tmp_path, trials=1, max_failures=2, patches=1024)
    log = tmp_path / "study.log"
    proc = faults.start(tmp_path, spec, False, log)
    wait_for_line(log, r"epoch 3 gan", proc, 600)
    assert not marker.exists()  # the torn write happened (before epoch 2 was reported)
    workers = faults.train_workers(proc.pid)
    assert len(workers) == 1, workers
    os.kill(workers[0], signal.SIGKILL)  # while it trains epoch 4
    finish(proc, log)

    report = faults.audit(tmp_path, planned=1)
    assert report == {"planned": 1, "survived": 1, "lost": 0, "duplicate_points": 0, "duplicate_runs": 0}
    client, kids = histories(tmp_path)
    assert len(kids) == 1
    for name in ("val_psnr", "loss_g", "loss_d", "g_steps"):  # MLflow's step is the epoch
        steps = [m.step for m in client.get_metric_history(kids[0].info.run_id, name)]
        assert steps == [1, 2, 3, 4], (name, steps)  # continuous, nothing repeated or lost
    # each restart resumed from the latest complete checkpoint: epoch 1 (the torn epoch 2 was never
    # used) and epoch 3; a restart from scratch would have reported epoch 1 again
    text = log.read_text()
    assert len(re.findall(r"epoch 1 pretrain", text)) == 1 and len(re.findall(r"epoch 4 gan", text)) == 1
    assert kids[0].data.tags.get("srstudy.status") == "completed"


@pytest.mark.timeout(900)
def test_past_max_failures_the_trial_fails_with_its_reason_and_the_study_goes_on(tmp_path, monkeypatch):
    marker = tmp_path / "tear-once"
    marker.touch()
    monkeypatch.setenv(TEAR_ENV, f"1:{marker}")  # the first trial's first checkpoint; no restarts allowed
    spec = spec_file(tmp_path, trials=2, max_failures=0, patches=256)
    log = tmp_path / "study.log"
    proc = faults.start(tmp_path, spec, False, log)
    finish(proc, log)
    assert not marker.exists()

    table = pd.read_parquet(tmp_path / "study_results" / "faults" / "results.parquet")
    assert sorted(table["status"]) == ["completed", "failed"], table
    failed = table[table["status"] == "failed"].iloc[0]
    assert failed["error"]  # the reason, in one line
    client, kids = histories(tmp_path)
    tags = {r.data.tags["srstudy.trial_id"]: r.data.tags for r in kids}
    assert tags[failed["trial_id"]].get("srstudy.status") == "failed"
    assert tags[failed["trial_id"]].get("srstudy.error") == failed["error"]
    done = table[table["status"] == "completed"].iloc[0]
    assert done["epochs"] == 4

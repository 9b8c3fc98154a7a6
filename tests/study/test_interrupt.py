"""Ctrl-C on a real study: exit 130, parent run KILLED, unfinished trials `interrupted`, then --resume finishes it.

Also the pieces that decide it, without Ray: the interrupted/stopped-early status rule,
the resume command, the exit code per signal, and the `ray job submit` durability check.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
import yaml

from study.results import trial_status
from study.run import Interruption, job_storage_problem, resume_command
from tests.study.processes import smoke_spec, study_env
from tests.trainables.signals import killed_if_running



# ----------------------------------------------------------------------------- units


def test_status_of_an_unfinished_trial_is_interrupted_never_stopped_early():
    assert trial_status({"status": "running", "epoch": 1}, None, "RUNNING") == "interrupted"
    assert trial_status({}, None, "PENDING") == "interrupted"
    assert trial_status({"status": "running", "epoch": 1}, None, "TERMINATED") == "stopped early"  # ASHA
    assert trial_status({"status": "running", "epoch": 1}, None, None) == "stopped early"
    assert trial_status({"status": "completed"}, None, "RUNNING") == "completed"  # its last epoch came in
    assert trial_status({"status": "running"}, RuntimeError("x"), "RUNNING") == "failed"


def test_resume_command_repeats_the_arguments_once():
    assert resume_command(["s.yaml", "--name", "a b", "--resume"]) == "python -m study.run s.yaml --name 'a b' --resume"
    assert resume_command(["s.yaml"]) == "python -m study.run s.yaml --resume"


def test_exit_code_is_128_plus_the_signal():
    stop = Interruption()
    assert stop.exit_code == 130
    stop.signum = signal.SIGTERM
    assert stop.exit_code == 143


def test_ray_job_without_durable_storage_is_refused(tmp_path):
    job = {"RAY_JOB_CONFIG_JSON_ENV_VAR": "{}"}
    assert job_storage_problem({}, None, None, tmp_path) is None  # not a job: the defaults are fine
    assert "--storage and --tracking-uri" in job_storage_problem(job, None, None, tmp_path)
    assert "--tracking-uri" in job_storage_problem(job, "s3://b/x", None, tmp_path)
    assert "--storage" in job_storage_problem(job, None, "http://h:5000", tmp_path)
    assert "inside the job's temporary working dir" in job_storage_problem(job, "results", "http://h:5000", tmp_path)
    assert "inside" in job_storage_problem(job, str(tmp_path / "r"), "http://h:5000", tmp_path)
    assert "inside" in job_storage_problem(job, "/shared/r", f"sqlite:///{tmp_path}/m.db", tmp_path)
    assert job_storage_problem(job, "/shared/r", "http://h:5000", tmp_path) is None
    assert job_storage_problem(job, "s3://b/x", "sqlite:////shared/m.db", tmp_path) is None


# ----------------------------------------------------------------------------- a real study


def _lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)
    out.put(None)


def _wait_for(lines: queue.Queue, needle: str, deadline: float, seen: list[str]) -> bool:
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            return False
        seen.append(line)
        if needle in line:
            return True
    return False


@pytest.mark.slow
@pytest.mark.timeout(1500)  # the sum of the deadlines below
def test_ctrl_c_is_reported_as_interruption_and_resume_finishes(tmp_path):
    from mlflow.tracking import MlflowClient

    # one trial at a time and no scheduler: after trial 1 a trial is running and one is pending,
    # and no trial may ever read "stopped early"
    spec = smoke_spec(name="ctrlc", trials=3, max_concurrent=1, scheduler={"type": "none"})
    path = tmp_path / "ctrlc.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = study_env()
    proc = subprocess.Popen([sys.executable, "-m", "study.run", str(path)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    with killed_if_running(proc):
        assert _wait_for(lines, "(1/3 done)", time.monotonic() + 600, seen), "".join(seen)[-3000:]
        assert _wait_for(lines, "started", time.monotonic() + 300, seen), "".join(seen)[-3000:]  # trial 2 runs
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
    err = proc.stderr.read()
    assert code == 130, err[-3000:]
    assert f"python -m study.run {path} --resume" in err

    table = pd.read_parquet(tmp_path / "study_results" / "ctrlc" / "results.parquet")
    assert len(table) >= 2 and (table["status"] == "completed").sum() == 1, table
    assert set(table["status"]) == {"completed", "interrupted"}, table  # never "stopped early"
    _wait_for(lines, "never printed: read to the end", time.monotonic() + 30, seen)
    assert "INTERRUPTED" in "".join(seen)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ctrlc")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("srstudy.role") == "study"]
    assert [p.info.status for p in parents] == ["KILLED"]
    kids = {r.data.tags["srstudy.trial_id"]: r for r in runs if r.data.tags.get("srstudy.role") == "trial"}
    for row in table.to_dict("records"):
        if row["trial_id"] in kids:
            kid = kids[row["trial_id"]]
            assert kid.data.tags["srstudy.status"] == row["status"]
            assert kid.info.status == ("FINISHED" if row["status"] == "completed" else "KILLED")

    done = subprocess.run([sys.executable, "-m", "study.run", str(path), "--resume"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = pd.read_parquet(tmp_path / "study_results" / "ctrlc" / "results.parquet")
    assert len(table) == 3 and set(table["status"]) == {"completed"}, table
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("srstudy.role") == "study"]
    assert [p.info.status for p in parents] == ["FINISHED"]  # the same parent run, resumed
    kids = [r.data.tags["srstudy.trial_id"] for r in runs if r.data.tags.get("srstudy.role") == "trial"]
    assert sorted(kids) == sorted(table["trial_id"])  # one child run per trial

"""Study subprocesses in the end-to-end tests: their spec, the environment they run in, and a driver killed mid-study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

SMOKE = Path(__file__).resolve().parents[2] / "search_spaces" / "smoke.yaml"


def smoke_spec(**top) -> dict:
    """search_spaces/smoke.yaml as read from YAML, its top-level keys replaced by `top`."""
    spec = yaml.safe_load(SMOKE.read_text())
    spec.update(top)
    return spec


def study_env(**extra: str) -> dict[str, str]:
    """This process's environment for `python -m study.run`, plus `extra`, less MLFLOW_TRACKING_URI and
    RAY_ADDRESS: the study keeps its MLflow store in its folder and starts a Ray of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    return {**env, **extra}


def wait_for_lines(log: Path, needle: str, proc: subprocess.Popen, timeout: float, count: int = 1) -> str:
    """The log once `count` of its lines hold `needle`: waits for that event (the log is a file the
    process writes, polled, so nothing blocks past the deadline); fails at once if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if sum(needle in line for line in text.splitlines()) >= count:
            return text
        if proc.poll() is not None:
            raise AssertionError(f"the study exited ({proc.returncode}) before {count} {needle!r} line(s):\n"
                                 f"{text[-4000:]}")
        time.sleep(0.5)
    raise AssertionError(f"fewer than {count} {needle!r} lines after {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def wait_group_gone(pgid: int, timeout: float = 120) -> None:
    """Returns once no process of the killed group is left (the driver and the Ray it started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes of group {pgid} still alive {timeout:.0f} s after SIGKILL")


def kill_study_after(folder: Path, args: list[str], needle: str, timeout: float, count: int = 1,
                     env: dict[str, str] | None = None) -> str:
    """Starts `python -u -m study.run ARGS` in `folder`, in a session of its own with its output in
    `folder/killed.log`; once `count` log lines hold `needle` (within `timeout` s) SIGKILLs the driver
    and the Ray it started, mid-study, and waits until all of them are gone. Returns the log as it
    was then. `env` defaults to `study_env()`."""
    log = folder / "killed.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-u", "-m", "study.run", *args], cwd=folder,
                                env=study_env() if env is None else env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        return wait_for_lines(log, needle, proc, timeout, count)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started, mid-study
        proc.wait(timeout=60)
        wait_group_gone(proc.pid)

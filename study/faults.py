"""Fault injection for a small study: kill Train workers or the driver at random moments, then audit the records.

    python -m study.faults workers --kills 10      # SIGKILL a Ray Train worker 10 times during one study
    python -m study.faults driver --kills 10       # SIGKILL the driver (and its Ray) 10 times, --resume each time

Runs `search_spaces/smoke.yaml` (1,024-patch epochs, sequential trials, no scheduler, `resources.max_failures`
raised to the number of kills so that restarts, not give-ups, are measured) in a fresh
folder, injects the faults, lets the study finish (driver mode: `--resume` until it exits
0), then prints from the results table and MLflow: trials that survived (completed) and
were lost (anything else), duplicate MLflow points (a (metric, epoch) logged twice in a
child run) and duplicate runs (more than one child run per trial, or more than one parent).
Exit code 0 when nothing was lost or duplicated. Not a test: it takes minutes and its
kill moments are random (`--seed` repeats them).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from trainables.errors import ArgumentParser

REPO = Path(__file__).resolve().parents[1]
WORKER_TITLE = "RayTrainWorker"  # the process title of a Ray Train worker actor


def write_spec(folder: Path, kills: int, trials: int) -> Path:
    spec = yaml.safe_load((REPO / "search_spaces" / "smoke.yaml").read_text())
    spec.update(name="faults", trials=trials, max_concurrent=1, scheduler={"type": "none"})
    # epochs of ~10 s on 2 cores, so that a kill can land mid-epoch, in validation or in a checkpoint write
    spec["base"].update({"schedule.patches_per_epoch": 1024, "schedule.gan_epochs": 3})
    spec["resources"] = {**spec.get("resources", {}), "max_failures": kills}
    path = folder / "faults.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, process title and command line) for every process visible in /proc."""
    table = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            name = (proc / "comm").read_text().strip()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])  # fields after "(comm)"
        except (OSError, ValueError, IndexError):  # the process ended meanwhile
            continue
        table[int(proc.name)] = (ppid, f"{name} {cmdline}")
    return table


def train_workers(driver: int) -> list[int]:
    """Pids of the Ray Train worker processes that descend from `driver` (the study and the Ray it started).

    Only its descendants: other studies on the same machine are not touched. Ray starts its
    processes in sessions of their own, so the process group does not say whose they are;
    the parent chain does. Ray sets an actor's process title (`ray::RayTrainWorker...`) with
    setproctitle, which shows in /proc/PID/comm (cut to 15 characters) or in the command line.
    """
    table = _processes()

    def descends(pid: int) -> bool:
        seen = set()
        while pid > 1 and pid not in seen:
            if pid == driver:
                return True
            seen.add(pid)
            pid = table.get(pid, (0, ""))[0]
        return False

    return [pid for pid, (_, title) in table.items()
            if pid != driver and (f"ray::{WORKER_TITLE}"[:15] in title or WORKER_TITLE in title) and descends(pid)]


def driver_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}


def start(folder: Path, spec: Path, resume: bool, log: Path) -> subprocess.Popen:
    args = [sys.executable, "-u", "-m", "study.run", str(spec)] + (["--resume"] if resume else [])
    with open(log, "a") as out:
        return subprocess.Popen(args, cwd=folder, env=driver_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill_workers(folder: Path, spec: Path, kills: int, rng: random.Random) -> int:
    """One study; a worker is killed `kills` times, each a random 1-8 s after a worker is seen."""
    proc = start(folder, spec, False, folder / "study.log")
    done = 0
    while proc.poll() is None and done < kills:
        pids = train_workers(proc.pid)
        if not pids:
            time.sleep(0.5)
            continue
        time.sleep(rng.uniform(1, 8))
        pids = train_workers(proc.pid)
        if pids:
            os.kill(rng.choice(pids), signal.SIGKILL)
            done += 1
            print(f"kill {done}/{kills}: a Train worker", flush=True)
    proc.wait()
    return done


def kill_driver(folder: Path, spec: Path, kills: int, rng: random.Random) -> int:
    """The driver and the Ray it started are killed `kills` times at random; each restart resumes."""
    done, resume = 0, False
    while True:
        proc = start(folder, spec, resume, folder / "study.log")
        if done < kills:
            try:
                proc.wait(timeout=rng.uniform(15, 60))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                done += 1
                print(f"kill {done}/{kills}: the driver", flush=True)
                resume = True
                continue
        else:
            proc.wait()
        if proc.returncode == 0:
            return done
        if proc.returncode == 2 and not resume:  # its state exists already: continue it
            resume = True
            continue
        raise SystemExit(f"the study exited {proc.returncode}; see {folder / 'study.log'}")


def audit(folder: Path, planned: int) -> dict[str, int]:
    """Survived / lost trials and duplicates, from the results table and MLflow."""
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from study.tracking import ROLE, TRIAL_ID

    table = pd.read_parquet(folder / "study_results" / "faults" / "results.parquet")
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name("faults")
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parents = [r for r in runs if r.data.tags.get(ROLE) == "study"]
    kids = [r for r in runs if r.data.tags.get(ROLE) == "trial"]
    per_trial = Counter(r.data.tags.get(TRIAL_ID) for r in kids)
    duplicate_points = 0
    for kid in kids:
        for name in kid.data.metrics:
            steps = Counter(m.step for m in client.get_metric_history(kid.info.run_id, name))
            duplicate_points += sum(n - 1 for n in steps.values())
    survived = int((table["status"] == "completed").sum())
    return {"planned": planned, "survived": survived, "lost": planned - survived,
            "duplicate_points": duplicate_points,
            "duplicate_runs": sum(n - 1 for n in per_trial.values()) + max(len(parents) - 1, 0)}


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m study.faults", description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["workers", "driver"], help="what to kill")
    p.add_argument("--kills", type=int, default=10, help="how many times (default 10)")
    p.add_argument("--trials", type=int, default=4, help="trials in the study (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--keep", default=None, help="run in this folder and keep it (default: a temp folder)")
    args = p.parse_args(argv)
    folder = Path(args.keep or tempfile.mkdtemp(prefix="srstudy-faults-"))
    folder.mkdir(parents=True, exist_ok=True)
    spec = write_spec(folder, args.kills, args.trials)
    rng = random.Random(args.seed)
    start_time = time.monotonic()
    kills = (kill_workers if args.mode == "workers" else kill_driver)(folder, spec, args.kills, rng)
    report = audit(folder, args.trials)
    print(f"\n{args.mode}: {kills} kills in {(time.monotonic() - start_time) / 60:.1f} min; "
          f"{report['survived']}/{report['planned']} trials survived, {report['lost']} lost, "
          f"{report['duplicate_points']} duplicate MLflow points, {report['duplicate_runs']} duplicate runs "
          f"(folder {folder})")
    return 0 if report["lost"] == report["duplicate_points"] == report["duplicate_runs"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""A real two-node Ray cluster on 127.0.0.1 (every port picked by the OS at bind, own temp folder,
token auth): the smoke study through `ray job submit`, logging to a real MLflow server; an impossible
GPU request is refused before any trial starts. Outcomes wait for events (a job's terminal state, a
line a process prints), never for a number of seconds.

Only the processes this test starts are stopped (`ray stop` would stop every Ray on the host).
"""

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def free_port() -> int:
    """A port the OS hands out now: only for the MLflow server, whose address must be known before it
    starts (a collision there is caught: `start_mlflow` retries on another port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 300) -> bool:
    """True once `url` answers; False when `proc` (the server behind it) exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except urllib.error.HTTPError:
            return True  # it answers (token auth refuses an anonymous request: that is up too)
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {timeout} s")


def wait_for_line(log: Path, pattern: str, proc: subprocess.Popen, timeout: float = 300) -> re.Match:
    """The first match of `pattern` in the log `proc` writes (an event, not a number of seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = ANSI.sub("", log.read_text(errors="replace")) if log.exists() else ""
        match = re.search(pattern, text)
        if match:
            return match
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[:4]} exited ({proc.returncode}) before printing {pattern!r}: {text[-2000:]}")
        time.sleep(0.5)
    raise AssertionError(f"no {pattern!r} in {log} after {timeout} s")


ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Every port a Ray node opens is chosen by the OS when Ray binds it (0 = any free port), the
# workers' included (no port ranges that two nodes on one host could share); the head's GCS and
# dashboard addresses are read back from what `ray start` prints.
NODE_PORTS = ["--node-manager-port", "0", "--object-manager-port", "0", "--metrics-export-port", "0",
              "--dashboard-agent-listen-port", "0", "--dashboard-agent-grpc-port", "0",
              "--runtime-env-agent-port", "0", "--min-worker-port", "0", "--max-worker-port", "0"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    temp_dir = Path("/tmp") / f"srray{secrets.token_hex(3)}"  # Ray's socket paths must stay short
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), MLFLOW_DISABLE_TELEMETRY="true")
    procs = []

    def start(args) -> tuple[subprocess.Popen, Path]:
        log = tmp / f"log{len(procs)}.txt"
        p = subprocess.Popen(args, env=env, cwd=tmp, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                             start_new_session=True)
        procs.append(p)
        return p, log

    def start_mlflow() -> str:
        for _ in range(3):  # a port taken between free_port() and the server's bind: try another
            port = free_port()
            server, _ = start([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}", "--artifacts-destination",
                               str(tmp / "artifacts"), "--workers", "1"])
            if wait_http(f"http://127.0.0.1:{port}/health", server):
                return f"http://127.0.0.1:{port}"
        raise AssertionError("the MLflow server did not start on three free ports")

    try:
        head, head_log = start([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                                "--node-ip-address", "127.0.0.1", "--port", "0", "--dashboard-host", "127.0.0.1",
                                "--dashboard-port", "0", "--num-cpus", "2", "--num-gpus", "0", "--temp-dir",
                                str(temp_dir), "--disable-usage-stats", *NODE_PORTS])
        # the MLflow server starts while Ray does (each takes a while on a small machine)
        mlflow_url = start_mlflow()
        gcs = wait_for_line(head_log, r"ray start --address='([^']+)'", head).group(1)
        dashboard = "http://" + wait_for_line(head_log, r"RAY_API_SERVER_ADDRESS='http://([^']+)'", head).group(1)
        assert wait_http(f"{dashboard}/api/version", head), "the Ray head exited: " + head_log.read_text()[-2000:]
        start([sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--address", gcs,
               "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--num-gpus", "0", "--disable-usage-stats",
               *NODE_PORTS])
        # wait until both nodes have joined
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "status", "--address", gcs],
                                    env=env, capture_output=True, text=True, timeout=60)
            if status.stdout.count(" node_") >= 2:
                break
            time.sleep(2)
        else:
            raise AssertionError("the second node did not join: " + status.stdout + status.stderr)
        yield {"env": env, "dashboard": dashboard, "mlflow": mlflow_url, "tmp": tmp, "temp_dir": temp_dir}
    finally:
        for p in reversed(procs):  # `ray start --block` stops the daemons it started when it gets SIGTERM
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def submit(cluster, job_id: str, entrypoint: list[str]) -> str:
    """`ray job submit` the entrypoint with this repository as the working dir; wait for the end."""
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "job", "submit", "--address", cluster["dashboard"],
           "--submission-id", job_id, "--working-dir", str(REPO),
           "--runtime-env-json", '{"excludes": [".git", "study_results", "mlflow.db", "mlruns"]}',
           "--no-wait", "--", *entrypoint]
    done = subprocess.run(cmd, env=cluster["env"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    # poll with the CLI too: it reads the token from this environment (a client in this
    # process would keep the auth mode Ray cached when it was first imported)
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts", "job"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        out = subprocess.run([*ray_cli, "status", "--address", cluster["dashboard"], job_id],
                             env=cluster["env"], capture_output=True, text=True, timeout=120).stdout
        for status in ("SUCCEEDED", "FAILED", "STOPPED"):
            if f"Job '{job_id}' {status.lower()}" in out:  # "Job 'srstudy-smoke' succeeded"
                logs = subprocess.run([*ray_cli, "logs", "--address", cluster["dashboard"], job_id],
                                      env=cluster["env"], capture_output=True, text=True, timeout=120).stdout
                return status + "\n" + logs
        time.sleep(3)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.mark.timeout(1500)  # includes the module's cluster start (up to ~10 min on a busy 2-core machine)
def test_smoke_study_through_ray_job_submit(cluster):
    storage = cluster["tmp"] / "shared_results"
    out = submit(cluster, "srstudy-smoke", [
        sys.executable, "-m", "study.run", "search_spaces/smoke.yaml", "--trials", "2",
        "--storage", str(storage), "--tracking-uri", cluster["mlflow"]])
    status, logs = out.split("\n", 1)
    assert status == "SUCCEEDED", logs[-4000:]
    assert "Ray: 3 CPUs" in logs  # the driver joined the two-node cluster instead of starting its own
    table = pd.read_parquet(storage / "smoke" / "results.parquet")
    assert len(table) == 2 and table["val_psnr"].notna().all()
    client = MlflowClient(cluster["mlflow"])
    exp = client.get_experiment_by_name("smoke")
    kids = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("srstudy.role") == "trial"]
    assert len(kids) == 2
    epochs = dict(zip(table["trial_id"], table["epochs"]))
    for kid in kids:  # the driver logged over HTTP exactly the epochs the results table holds
        steps = [m.step for m in client.get_metric_history(kid.info.run_id, "val_psnr")]
        assert steps == list(range(1, int(epochs[kid.data.tags["srstudy.trial_id"]]) + 1))


@pytest.mark.timeout(1500)
def test_more_gpus_than_the_cluster_has_fails_fast(cluster):
    spec = yaml.safe_load((REPO / "search_spaces" / "smoke.yaml").read_text())
    spec.update(name="gpu_job", resources={"workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 1})
    path = cluster["tmp"] / "gpu_job.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = submit(cluster, "srstudy-gpu", [sys.executable, "-m", "study.run", str(path),
                                          "--storage", str(cluster["tmp"] / "gpu_results"),
                                          "--tracking-uri", cluster["mlflow"]])
    status, logs = out.split("\n", 1)
    assert status == "FAILED"  # refused before any trial started (the cluster was declared with 0 GPUs)
    assert "needs 1 GPU(s)" in logs and "the cluster has 0" in logs

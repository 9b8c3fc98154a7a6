"""Shared pytest fixtures: where the SR benchmark images (Set5/, Set14/) are, if anywhere."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def benchmarks() -> Path:
    """The folder holding Set5/ and Set14/ ($SR_BENCHMARKS or ../shared/data/sr-benchmarks); skip if absent.

    The images are academic benchmarks without a licence: they are never copied into
    this repository, so tests that need them skip cleanly where the folder is missing.
    """
    from trainables.evaluate import benchmark_root  # imported here so collection stays light

    root = benchmark_root()
    if root is None or not (root / "Set5").is_dir() or not (root / "Set14").is_dir():
        pytest.skip("SR benchmark images not found: set SR_BENCHMARKS to the folder holding Set5/ and Set14/")
    return root


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> Path:
    """`python -m study.run search_spaces/smoke.yaml` run once, for real, in a fresh folder.

    Returns that folder: `mlflow.db` (MLflow's default store) and `study_results/smoke/`.
    Shared by the tracking, browser and report tests so the suite pays for one study.
    """
    import os
    import signal
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("smoke_study")
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    proc = subprocess.Popen([sys.executable, "-m", "study.run", str(repo / "search_spaces" / "smoke.yaml")],
                            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=1200)  # a deadline on a busy machine, not a measurement
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the study and the Ray it started
        out, err = proc.communicate()
        pytest.fail(f"the smoke study did not end within 1200 s:\n{out[-3000:]}\n{err[-3000:]}")
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    return folder

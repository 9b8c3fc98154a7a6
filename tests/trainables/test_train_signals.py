"""`python -m trainables.train` stopped by SIGTERM (a scheduler) or SIGINT (Ctrl-C): exit 130, resumable, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainables.signals import killed_if_running

REPO = Path(__file__).resolve().parents[2]
LONG_TINY = ["data.patch_size=32", "data.val_images=1", "data.val_patches_per_image=1", "data.grid_images=1",
             "model.g_channels=8", "model.g_blocks=1", "model.d_channels=8", "model.d_dense=16",
             "schedule.pretrain_epochs=500", "schedule.gan_epochs=0", "schedule.patches_per_epoch=16",
             "schedule.batch_size=8", "runtime.threads=1"]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_run_with_exit_130(tmp_path, sig):
    args = [sys.executable, "-u", "-m", "trainables.train", "--out", str(tmp_path / "run")]
    for pair in LONG_TINY:
        args += ["--set", pair]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    with killed_if_running(proc):
        for line in proc.stdout:  # wait for an event: the first finished epoch
            if line.startswith("epoch "):
                break
        else:
            raise AssertionError(f"no epoch line; rc {proc.wait()}: {proc.stderr.read()[-2000:]}")
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
    err = proc.stderr.read()
    assert code == 130, err[-2000:]
    assert "Traceback" not in err and "resume with --resume" in err
    assert any((tmp_path / "run" / "checkpoints").iterdir())  # what it trained is kept to resume from

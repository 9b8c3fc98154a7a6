"""A trial run inside a study and its resolved config run alone (`python -m trainables.train`) agree:
the same validation PSNR every epoch, to 0.01 dB (the seeding is exact across Ray and no Ray)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EPOCH = re.compile(r"^epoch\s+(\d+) .*\| val PSNR ([0-9.]+) ")
SPEC = {
    "name": "same_numbers",
    "base": {"data.patch_size": 32, "data.val_images": 1, "data.val_patches_per_image": 4, "data.grid_images": 2,
             "model.g_channels": 8, "model.g_blocks": 1, "model.d_channels": 8, "model.d_dense": 16,
             "model.d_norm": "layer", "schedule.pretrain_epochs": 1, "schedule.gan_epochs": 2,
             "schedule.patches_per_epoch": 64, "schedule.batch_size": 8, "seed": 3},
    "space": {"loss.family": {"type": "grid", "values": ["lsgan"]}},
    "searcher": {"algorithm": "grid"},
    "trials": None,
    "resources": {"workers": 1, "cpus_per_worker": 1},
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    return {**env, "OMP_NUM_THREADS": "1"}  # Ray gives a 1-CPU worker one thread; so does the lone run


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_study_trial_and_the_lone_trainer_agree_per_epoch(tmp_path):
    from reports.load import load_study
    from study.spec import from_dict, trial_config
    from trainables.config import dump_yaml

    spec_path = tmp_path / "same_numbers.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    study = subprocess.run([sys.executable, "-m", "study.run", str(spec_path)], cwd=tmp_path, env=_env(),
                           capture_output=True, text=True, timeout=360)
    assert study.returncode == 0, study.stdout[-3000:] + study.stderr[-3000:]
    loaded = load_study("same_numbers", f"sqlite:///{tmp_path / 'mlflow.db'}")
    history = loaded.history.sort_values("epoch")
    in_study = dict(zip(history["epoch"].astype(int), history["val_psnr"]))
    assert sorted(in_study) == [1, 2, 3]

    cfg = trial_config(from_dict(SPEC), {"loss.family": "lsgan"}, 0)
    (tmp_path / "trial.yaml").write_text(dump_yaml(cfg))
    alone = subprocess.run([sys.executable, "-m", "trainables.train", str(tmp_path / "trial.yaml"),
                            "--out", str(tmp_path / "alone")], cwd=REPO, env=_env(), capture_output=True,
                           text=True, timeout=300)
    assert alone.returncode == 0, alone.stdout[-3000:] + alone.stderr[-3000:]
    printed = {int(m[1]): float(m[2]) for m in map(EPOCH.match, alone.stdout.splitlines()) if m}
    assert sorted(printed) == [1, 2, 3]
    for epoch, psnr in in_study.items():  # the lone run prints 2 decimals: at most 0.005 dB of rounding
        assert abs(psnr - printed[epoch]) <= 0.01, (epoch, psnr, printed[epoch])

"""The study benchmark's pieces that need no Ray: the spec copy, reading Tune's trial folders, direct runs."""

import json

import pytest
import yaml

from study.bench import run_direct, study_trials, write_spec
from study.spec import load_spec

SPEC = """\
name: tiny
base: {model.g_channels: 8, model.g_blocks: 1, model.d_channels: 4, model.d_dense: 8, data.patch_size: 32,
       schedule.pretrain_epochs: 1, schedule.gan_epochs: 0, schedule.patches_per_epoch: 16,
       schedule.batch_size: 8, data.val_images: 2, data.val_patches_per_image: 1, data.grid_images: 1,
       runtime.threads: 1}
space:
  loss.family: {type: grid, values: [bce, lsgan]}
searcher: {algorithm: grid, seed: 0}
scheduler: {type: none}
objective: {metric: val_psnr, mode: max}
trials: null
repeats: 3
resources: {workers: 1, cpus_per_worker: 1, gpus_per_worker: 0}
"""


def test_spec_copy_replaces_top_level_keys_only(tmp_path):
    src = tmp_path / "s.yaml"
    src.write_text(SPEC)
    copy = write_spec(str(src), tmp_path, "bench", {"repeats": 1})
    raw = yaml.safe_load(copy.read_text())
    assert raw["name"] == "bench" and raw["repeats"] == 1 and raw["base"]["model.g_channels"] == 8
    assert load_spec(copy).total_trials == 2


def test_trials_are_read_back_from_tunes_folders(tmp_path):
    src = tmp_path / "s.yaml"
    src.write_text(SPEC)
    spec = load_spec(src)
    for i, (family, repeat) in enumerate([("bce", 0), ("lsgan", 2)]):
        trial = tmp_path / "results" / "bench" / f"trial_{i}"
        trial.mkdir(parents=True)
        (trial / "params.json").write_text(json.dumps({"loss.family": family, "__trial_index__": repeat}))
        (trial / "result.json").write_text("\n".join(json.dumps({"epoch": e, "val_psnr": 30.0 + e})
                                                     for e in (1, 2)) + "\n")
    trials = study_trials(spec, tmp_path, "bench")
    assert [(t["loss"]["family"], t["seed"], psnr, epochs) for t, psnr, epochs in trials] == [
        ("bce", spec.base_config.seed, 32.0, 2), ("lsgan", spec.base_config.seed + 2, 32.0, 2)]


@pytest.mark.timeout(300)
def test_direct_runs_report_their_psnr(tmp_path):
    src = tmp_path / "s.yaml"
    src.write_text(SPEC)
    spec = load_spec(src)
    configs = [t for t, _, _ in [(spec.base_config.to_dict(), None, 0)] * 2]
    wall, psnr = run_direct(configs, tmp_path, concurrency=2, threads=1, gpus=0)
    assert wall > 0 and len(psnr) == 2 and all(p is not None and p > 20 for p in psnr)
    assert psnr[0] == psnr[1]  # the same config and seed: the same run

"""GPU readiness: a short trial on CUDA with bf16 autocast and channels_last (skipped without CUDA),
and a clear error when CUDA is asked for where there is none."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from trainables.config import ConfigError, load_config
from trainables.train import train


def _folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    return tmp_path


def _cfg(folder, **extra):
    return load_config(overrides={
        "data.source": "folder", "data.path": str(folder), "data.patch_size": 32, "data.val_images": 1,
        "model.g_channels": 8, "model.g_blocks": 1, "model.d_channels": 8, "model.d_dense": 16,
        "schedule.pretrain_epochs": 1, "schedule.gan_epochs": 1, "schedule.patches_per_epoch": 32,
        "schedule.batch_size": 8, **extra})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("family", ["lsgan", "wgan_gp"])
def test_short_trial_on_a_gpu_with_bf16_and_channels_last(tmp_path, family):
    cfg = _cfg(_folder(tmp_path), **{"runtime.device": "cuda", "runtime.precision": "bf16",
                                      "runtime.channels_last": True, "loss.family": family,
                                      "model.d_norm": "layer" if family == "wgan_gp" else "batch"})
    final = train(cfg, out_dir=tmp_path / "out")
    assert final["status"] == "completed"
    assert np.isfinite(final["loss_g"]) and np.isfinite(final["val_psnr"])
    # the same trial in float32 on the CPU: the same bicubic reference (computed on the CPU either
    # way), and a generator within 1 dB after the same 8 steps (bf16 rounding, not another model)
    cpu = train(dataclasses.replace(cfg, runtime=dataclasses.replace(
        cfg.runtime, device="cpu", precision="fp32", channels_last=False)), out_dir=tmp_path / "cpu")
    assert final["bicubic_psnr"] == cpu["bicubic_psnr"]
    assert final["val_psnr"] == pytest.approx(cpu["val_psnr"], abs=1.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_asking_for_cuda_without_one_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="runtime.device: 'cuda' requested but no CUDA device"):
        train(_cfg(_folder(tmp_path), **{"runtime.device": "cuda"}), out_dir=tmp_path / "out")

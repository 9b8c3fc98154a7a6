"""GAN-phase stability on constructed val_psnr curves (flat, rising, collapsing), and as the trainer reports it."""

import math

import numpy as np
import pytest
import torch

from trainables.stability import gan_stability, psnr_drop, psnr_spread

START = 30.0
FLAT = [30.0, 30.0, 30.0, 30.0]
RISING = [30.2, 30.4, 30.6, 30.8]
COLLAPSING = [29.5, 27.0, 22.0, 12.0]


def test_flat_curve_is_perfectly_stable():
    assert gan_stability(START, FLAT) == {"gan_psnr_spread": 0.0, "gan_psnr_drop": 0.0, "gan_psnr_start": 30.0}


def test_collapsing_curve_scores_worse_than_flat_and_rising():
    collapse = gan_stability(START, COLLAPSING)
    for steady in (FLAT, RISING):
        ok = gan_stability(START, steady)
        assert collapse["gan_psnr_spread"] > ok["gan_psnr_spread"]
        assert collapse["gan_psnr_drop"] > ok["gan_psnr_drop"]
    assert collapse["gan_psnr_drop"] == pytest.approx(18.0)  # 30 -> 12 dB
    assert gan_stability(START, RISING)["gan_psnr_drop"] == 0.0  # never below where the GAN phase started


def test_spread_is_the_population_std_and_drop_the_worst_fall():
    curve = [31.0, 29.5, 30.25, 28.0, 30.0]
    assert psnr_spread(curve) == pytest.approx(np.std(curve))  # ddof 0
    assert psnr_spread([30.0]) == 0.0
    assert psnr_drop(30.5, curve) == pytest.approx(2.5)
    assert math.isnan(psnr_spread([])) and math.isnan(psnr_drop(30.0, []))
    assert math.isnan(psnr_drop(math.nan, curve))


# ----------------------------------------------------------------------------- in the trainer


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from PIL import Image

    folder = tmp_path_factory.mktemp("stability_photos")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    for i in range(4):
        img = sum(np.sin(2 * np.pi * (rng.uniform(1, 12) * xx + rng.uniform(1, 12) * yy))[..., None]
                  * rng.uniform(0.2, 1, 3) for _ in range(5))
        img = (img - img.min()) / (img.max() - img.min()) * 255
        Image.fromarray(img.astype(np.uint8)).save(folder / f"p{i}.png")
    return folder


@pytest.mark.parametrize("pretrain_epochs", [0, 1])
def test_trainer_reports_stability_every_gan_epoch_and_gridding_every_epoch(photos, tmp_path, pretrain_epochs):
    from trainables import train as train_mod
    from trainables.config import load_config

    cfg = load_config(overrides={
        "data.source": "folder", "data.path": str(photos), "data.patch_size": 32, "data.val_images": 2,
        "data.val_patches_per_image": 2, "data.grid_images": 2, "model.g_channels": 8, "model.g_blocks": 1,
        "model.d_channels": 8, "model.d_dense": 16, "schedule.pretrain_epochs": pretrain_epochs,
        "schedule.gan_epochs": 2, "schedule.patches_per_epoch": 16, "schedule.batch_size": 8,
        "runtime.threads": 1, "eval.benchmarks": [], "optim.beta1_pretrain": 0.5, "optim.beta2_pretrain": 0.99})
    reports = []
    train_mod.train(cfg, report=lambda m, c: reports.append(m), out_dir=tmp_path)
    for m in reports:
        assert np.isfinite(m["val_grid"]) and 0 < m["bicubic_grid"] < 1  # bicubic suppresses the grid lines
    gan = [m for m in reports if m["phase"] == "gan"]
    assert len(gan) == 2 and all("gan_psnr_drop" not in m for m in reports if m["phase"] == "pretrain")
    if pretrain_epochs:
        assert gan[0]["gan_psnr_start"] == reports[0]["val_psnr"]
    else:  # the initial generator (zero last conv over the bicubic skip) is the bicubic baseline
        assert gan[0]["gan_psnr_start"] == pytest.approx(gan[0]["bicubic_psnr"], abs=0.02)
    curve = [m["val_psnr"] for m in gan]
    assert gan[1]["gan_psnr_spread"] == pytest.approx(np.std(curve))
    assert gan[1]["gan_psnr_drop"] == pytest.approx(max(0.0, gan[0]["gan_psnr_start"] - min(curve)))
    assert gan[0]["gan_psnr_spread"] == 0.0


def test_pretraining_adam_uses_its_own_betas():
    from trainables.config import load_config
    from trainables.distributed import dist_info
    from trainables.trainer import Trainer

    cfg = load_config(overrides={"optim.beta1_pretrain": 0.5, "optim.beta2_pretrain": 0.99, "model.g_channels": 8,
                                 "model.g_blocks": 1, "model.d_channels": 8, "model.d_dense": 16})
    trainer = Trainer(cfg, dist_info(), torch.device("cpu"))
    assert trainer.opt_pre.param_groups[0]["betas"] == (0.5, 0.99)
    assert trainer.opt_g.param_groups[0]["betas"] == (cfg.optim.beta1_g, cfg.optim.beta2)

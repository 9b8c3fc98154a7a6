"""Learning-rate schedules: each schedule's rate per epoch equals its formula, the trainer sets
and reports the rates in force, and a resume in the middle of a schedule continues exactly."""

import math
from pathlib import Path

import pytest
import torch

from tests.trainables.photos import tiny_config
from trainables import checkpoint
from trainables import trainer as trainer_mod
from trainables.config import ConfigError, OptimConfig, load_config
from trainables.schedules import epoch_rates, lr_factor
from trainables.train import train


def test_constant_is_one_after_a_linear_warm_up():
    cfg = OptimConfig(schedule="constant", warmup_epochs=3)
    assert [lr_factor(cfg, e, 6) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert [lr_factor(OptimConfig(), e, 4) for e in range(4)] == [1.0] * 4


def test_step_multiplies_by_gamma_every_step_epochs():
    cfg = OptimConfig(schedule="step", step_epochs=2, gamma=0.1)
    got = [lr_factor(cfg, e, 7) for e in range(7)]
    want = [1, 1, 0.1, 0.1, 0.01, 0.01, 0.001]
    assert got == pytest.approx(want, rel=1e-12)


def test_cosine_follows_half_a_cosine_to_the_floor_after_warm_up():
    cfg = OptimConfig(schedule="cosine", warmup_epochs=1, min_lr_ratio=0.1)
    got = [lr_factor(cfg, e, 5) for e in range(5)]
    # e = 0: warm-up 1/2; e = 1..4: 0.1 + 0.9 * (1 + cos(pi * (e - 1) / 4)) / 2
    want = [0.5] + [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert got == pytest.approx(want, rel=1e-12)
    assert got[1:] == pytest.approx([1.0, 0.1 + 0.9 * (2 + 2**0.5) / 4, 0.55, 0.1 + 0.9 * (2 - 2**0.5) / 4])
    # epoch 0's rate does not depend on the phase's length (trainables.quality relies on it)
    assert {lr_factor(OptimConfig(schedule="cosine"), 0, n) for n in (1, 2, 9, 100)} == {1.0}


def test_each_phase_runs_the_schedule_over_its_own_epochs():
    cfg = load_config(overrides={"optim.schedule": "cosine", "optim.lr_pretrain": 1e-3, "optim.lr_g": 2e-4,
                                 "optim.lr_d": 4e-4, "schedule.pretrain_epochs": 2, "schedule.gan_epochs": 2})
    assert epoch_rates(cfg, 0) == {"lr_pretrain_now": pytest.approx(1e-3)}
    assert epoch_rates(cfg, 1) == {"lr_pretrain_now": pytest.approx(0.5e-3)}
    assert epoch_rates(cfg, 2) == {"lr_g_now": pytest.approx(2e-4), "lr_d_now": pytest.approx(4e-4)}
    assert epoch_rates(cfg, 3) == {"lr_g_now": pytest.approx(1e-4), "lr_d_now": pytest.approx(2e-4)}


@pytest.mark.parametrize("key,value", [("optim.schedule", "linear"), ("optim.gamma", 0.0), ("optim.gamma", 1.5),
                                       ("optim.step_epochs", 0), ("optim.warmup_epochs", -1),
                                       ("optim.min_lr_ratio", 2.0)])
def test_impossible_schedule_settings_are_one_line_errors(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        load_config(overrides={key: value})
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- the trainer


def tiny(folder: Path, **overrides):
    """Three pretraining and two GAN epochs under a cosine schedule with one warm-up epoch."""
    return tiny_config(folder, width=8, val_images=1, val_patches=2, pretrain_epochs=3, gan_epochs=2,
                       patches_per_epoch=16, batch_size=8,
                       **{"optim.schedule": "cosine", "optim.warmup_epochs": 1, **overrides})


def test_trainer_sets_and_reports_the_rate_in_force(photo_folder, tmp_path, monkeypatch):
    cfg = tiny(photo_folder)
    seen = []  # (epoch, the optimiser's rate when the epoch's first step runs)
    real_pre, real_gan = trainer_mod.Trainer.pretrain_step, trainer_mod.Trainer.gan_step

    def spy_pre(self, *a):
        seen.append((self.epoch, "pre", self.opt_pre.param_groups[0]["lr"]))
        return real_pre(self, *a)

    def spy_gan(self, *a):
        seen.append((self.epoch, "g", self.opt_g.param_groups[0]["lr"]))
        seen.append((self.epoch, "d", self.opt_d.param_groups[0]["lr"]))
        return real_gan(self, *a)

    monkeypatch.setattr(trainer_mod.Trainer, "pretrain_step", spy_pre)
    monkeypatch.setattr(trainer_mod.Trainer, "gan_step", spy_gan)
    reports = []
    train(cfg, report=lambda m, c: reports.append(m), out_dir=tmp_path)
    lr_p, lr_g, lr_d = cfg.optim.lr_pretrain, cfg.optim.lr_g, cfg.optim.lr_d
    # pretraining: 3 epochs, warm-up 1 then cosine over 2; GAN: 2 epochs, warm-up 1 then cosine over 1
    want = [{"lr_pretrain_now": lr_p * f} for f in (0.5, 1.0, 0.5)] + \
           [{"lr_g_now": lr_g * f, "lr_d_now": lr_d * f} for f in (0.5, 1.0)]
    for m, w in zip(reports, want):
        got = {k: m[k] for k in ("lr_pretrain_now", "lr_g_now", "lr_d_now") if k in m}
        assert got == pytest.approx(w, rel=1e-12)
    by_epoch = {(e, which): rate for e, which, rate in seen}
    for e, w in enumerate(want):
        for key, rate in w.items():
            which = {"lr_pretrain_now": "pre", "lr_g_now": "g", "lr_d_now": "d"}[key]
            assert by_epoch[(e, which)] == pytest.approx(rate, rel=1e-12)


def test_resume_in_the_middle_of_a_schedule_with_ema_and_l1_is_exact(photo_folder, tmp_path):
    cfg = tiny(photo_folder, **{"optim.ema_decay": 0.9, "loss.pixel": "l1", "optim.schedule": "step",
                                "optim.step_epochs": 1, "optim.gamma": 0.5})
    straight = []
    train(cfg, report=lambda m, c: straight.append(m), out_dir=tmp_path / "a")

    class Stop(Exception):
        pass

    def stop_after_two(metrics, ckpt):
        if metrics["epoch"] == 2:  # in the middle of the pretraining schedule
            raise Stop

    with pytest.raises(Stop):
        train(cfg, report=stop_after_two, out_dir=tmp_path / "b")
    resumed = []
    train(cfg, report=lambda m, c: resumed.append(m), out_dir=tmp_path / "b",
          resume_from=tmp_path / "b" / "checkpoints" / "epoch_0002")
    assert [m["epoch"] for m in resumed] == [3, 4, 5]
    for got, want in zip(resumed, straight[2:]):
        for key in ("loss_g", "loss_pixel", "loss_d", "val_psnr", "val_ssim", "lr_pretrain_now", "lr_g_now",
                    "lr_d_now", "g_steps"):
            assert got.get(key) == want.get(key), (got["epoch"], key)
    a = checkpoint.load(tmp_path / "a" / "checkpoints" / "epoch_0005")[1]
    b = checkpoint.load(tmp_path / "b" / "checkpoints" / "epoch_0005")[1]
    for name in ("generator", "generator_live"):
        for key, value in a[name].items():
            assert torch.equal(value, b[name][key]), (name, key)
    assert a["ema_updates"] == b["ema_updates"] == a["g_steps"]

"""The trainer on tiny models: both phases for every loss family x upsampler x scale,
the D:G ratio, exact resume, divergence, a 2-process gloo run and the CLI."""

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image
from torch.optim.optimizer import register_optimizer_step_post_hook

from tests.trainables.photos import tiny_config
from trainables import trainer as trainer_mod
from trainables.train import train


def tiny(folder: Path, **overrides):
    # on the CPU: the exact equalities below (resume, DDP ranks) hold on one CPU; no test-set scoring:
    # it has its own tests (test_benchmarks.py)
    return tiny_config(folder, width=8, val_images=2, val_patches=2, pretrain_epochs=1, gan_epochs=1,
                       patches_per_epoch=32, batch_size=8,
                       **{"runtime.device": "cpu", "eval.benchmarks": [], **overrides})


# bicubic Y-PSNR of `tiny`'s 4 validation patches (32 px) of `photo_folder`, measured once
BICUBIC_PSNR = {2: 36.5745, 4: 22.0495}


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("upsampler", ["pixel_shuffle", "resize_conv"])
@pytest.mark.parametrize("family", ["bce", "lsgan", "wgan_gp"])
def test_every_family_upsampler_scale_runs_both_phases(photo_folder, tmp_path, family, upsampler, scale):
    cfg = tiny(photo_folder, **{"loss.family": family, "model.upsampler": upsampler, "scale": scale,
                                "model.d_norm": "none" if family == "wgan_gp" else "batch"})
    reports = []
    final = train(cfg, report=lambda m, c: reports.append((m, c)), out_dir=tmp_path)
    assert [m["phase"] for m, _ in reports] == ["pretrain", "gan"]
    assert final["status"] == "completed"
    gan = reports[1][0]
    for key in ("loss_g", "loss_d", "loss_adv", "d_real", "d_fake", "val_psnr", "val_ssim", "val_hf",
                "bicubic_psnr", "images_per_s"):
        assert np.isfinite(gan[key]), key
    # the bicubic reference of these validation patches by the protocol, the same in both phases
    assert reports[0][0]["bicubic_psnr"] == gan["bicubic_psnr"] == pytest.approx(BICUBIC_PSNR[scale], abs=1e-3)
    assert Path(reports[1][1], "state.pt").is_file()
    grid = Image.open(tmp_path / "grids" / "epoch_0002.png")
    # 2 columns of 32 px tiles plus labels; 4 rows (SR, bicubic, LR, HR)
    assert grid.size[1] == 4 * (32 + 2)


def test_d_steps_per_g_is_honoured(photo_folder, tmp_path):
    counts: Counter = Counter()
    hook = register_optimizer_step_post_hook(
        lambda opt, args, kwargs: counts.update([id(opt)]))
    seen = {}
    original = trainer_mod.Trainer.__init__

    def spy(self, *a, **k):
        original(self, *a, **k)
        seen.update(pre=id(self.opt_pre), g=id(self.opt_g), d=id(self.opt_d))

    try:
        trainer_mod.Trainer.__init__ = spy
        cfg = tiny(photo_folder, **{"schedule.d_steps_per_g": 3, "schedule.patches_per_epoch": 40,
                                    "schedule.batch_size": 8})
        final = train(cfg, out_dir=tmp_path)
    finally:
        trainer_mod.Trainer.__init__ = original
        hook.remove()
    batches = 40 // 8
    assert counts[seen["pre"]] == batches  # pretraining: one G step per batch
    assert counts[seen["g"]] == batches  # GAN phase: one G step per batch ...
    assert counts[seen["d"]] == 3 * batches  # ... after three D steps
    assert (final["g_steps"], final["d_steps"]) == (2 * batches, 3 * batches)


def test_resume_after_interruption_matches_uninterrupted_run(photo_folder, tmp_path):
    cfg = tiny(photo_folder, **{"schedule.pretrain_epochs": 1, "schedule.gan_epochs": 2, "loss.family": "wgan_gp",
                                "model.d_norm": "layer"})
    straight = train(cfg, out_dir=tmp_path / "a")

    class Stop(Exception):
        pass

    def stop_after_two(metrics, ckpt):
        if metrics["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        train(cfg, report=stop_after_two, out_dir=tmp_path / "b")
    resumed = train(cfg, out_dir=tmp_path / "b", resume_from=tmp_path / "b" / "checkpoints" / "epoch_0002")
    for key in ("loss_g", "loss_d", "loss_gp", "val_psnr", "val_ssim", "d_real", "g_steps", "d_steps"):
        assert resumed[key] == straight[key], key
    assert resumed["epoch"] == 3


def test_resuming_a_finished_run_reports_its_final_metrics_again(photo_folder, tmp_path):
    cfg = tiny(photo_folder)
    final = train(cfg, out_dir=tmp_path)
    reports = []
    again = train(cfg, report=lambda m, c: reports.append((m, c)), out_dir=tmp_path / "again",
                  resume_from=tmp_path / "checkpoints" / "epoch_0002")
    assert len(reports) == 1 and reports[0][1] is None
    assert again["val_psnr"] == final["val_psnr"] and again["epoch"] == 2 and again["status"] == "completed"


def test_nan_loss_ends_as_diverged(photo_folder, tmp_path, monkeypatch):
    real = trainer_mod.pixel_loss
    monkeypatch.setattr(trainer_mod, "pixel_loss", lambda sr, hr, cfg: real(sr, hr, cfg) * float("nan"))
    reports = []
    final = train(tiny(photo_folder), report=lambda m, c: reports.append((m, c)), out_dir=tmp_path)
    assert final["status"] == "diverged"
    assert final["diverged"] == 1
    assert len(reports) == 1  # stopped in the first epoch, no further epochs
    assert reports[0][1] is None  # no checkpoint of a diverged model


def _ddp_worker(rank: int, world: int, init_file: str, folder: str, out: str, family: str, queue) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    seen = {}
    original = trainer_mod.Trainer.__init__

    def spy(self, *a, **k):  # keep this rank's Trainer, to read its models after training
        original(self, *a, **k)
        seen["trainer"] = self
        seen["g0"] = {k: p.detach().numpy().copy() for k, p in trainer_mod.unwrap(self.generator).named_parameters()}

    trainer_mod.Trainer.__init__ = spy
    try:
        overrides = {"loss.family": family, "schedule.patches_per_epoch": 48}
        if family == "wgan_gp":
            overrides["model.d_norm"] = "layer"  # WGAN-GP's penalty is per sample: no batch norm in D
        cfg = tiny(Path(folder), **overrides)
        reports = []
        final = train(cfg, report=lambda m, c: reports.append((m["epoch"], m["val_psnr"], c)), out_dir=out)
        trainer = seen["trainer"]
        # numpy copies: torch tensors would cross the queue as shared memory of a process about to exit
        params = {name: {k: p.detach().numpy().copy() for k, p in trainer_mod.unwrap(model).named_parameters()}
                  for name, model in (("G", trainer.generator), ("D", trainer.discriminator))}
        saved = None
        if rank == 0:  # the checkpoint holds tensors and plain values only
            saved = torch.load(Path(out) / "checkpoints" / "epoch_0002" / "state.pt", weights_only=True)["generator"]
            saved = {k: v.numpy().copy() for k, v in saved.items()}
        queue.put((rank, final["status"], reports, final["images_per_s"] > 0, params, seen["g0"], saved,
                   (final["g_steps"], final["d_steps"])))
    finally:
        trainer_mod.Trainer.__init__ = original
        torch.distributed.destroy_process_group()


def _run_two_ranks(tmp_path: Path, folder: Path, family: str) -> list:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, str(tmp_path / "init"), str(folder),
                                                   str(tmp_path / "out"), family, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted((queue.get(timeout=240) for _ in procs), key=lambda r: r[0])
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


@pytest.mark.parametrize("family", ["lsgan", "wgan_gp"])
def test_two_process_gloo_run_keeps_both_ranks_identical(photo_folder, tmp_path, family):
    """DDP over gloo: every rank ends with the same G and D, bit for bit, after real steps.

    wgan_gp is the hard case: D's loss takes a second backward pass (the gradient penalty's
    create_graph gradient) through the DDP-wrapped D on every D step.
    """
    (r0, s0, rep0, ok0, p0, g0_0, saved, steps0), (r1, s1, rep1, ok1, p1, g0_1, _, steps1) = \
        _run_two_ranks(tmp_path, photo_folder, family)
    assert s0 == s1 == "completed" and ok0 and ok1
    # 48 patches per epoch over 2 ranks of batch 8: 3 batches per epoch on each rank; G steps in
    # pretraining and the GAN epoch, 2 D steps per G step (the default d_steps_per_g)
    assert steps0 == steps1 == (3 + 3, 2 * 3)
    for name in ("G", "D"):
        assert len(p0[name]) == len(p1[name]) > 0
        assert p0[name].keys() == p1[name].keys()
        for key in p0[name]:
            assert np.array_equal(p0[name][key], p1[name][key]), f"{name} {key}"
    assert any(not np.array_equal(g0_0[k], p0["G"][k]) for k in g0_0)  # the steps changed G
    assert all(np.array_equal(g0_0[k], g0_1[k]) for k in g0_0)  # and both started from the same weights
    # rank 0's checkpoint holds the trained G
    assert all(np.array_equal(saved[k], p0["G"][k]) for k in p0["G"])
    # every rank reports rank 0's metrics; only rank 0 has a checkpoint folder
    assert [(e, p) for e, p, _ in rep0] == [(e, p) for e, p, _ in rep1]
    assert all(c is not None for _, _, c in rep0) and all(c is None for _, _, c in rep1)


def test_cli_runs_and_prints_the_table(photo_folder, tmp_path):
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(
        f"data: {{source: folder, path: '{photo_folder}', patch_size: 32, val_images: 2}}\n"
        "model: {g_channels: 8, g_blocks: 1, d_channels: 8, d_dense: 16}\n"
        "schedule: {pretrain_epochs: 1, gan_epochs: 1, patches_per_epoch: 16, batch_size: 8}\n")
    done = subprocess.run([sys.executable, "-m", "trainables.train", str(cfg_file), "--set", "loss.beta=0.01",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "beta: 0.01" in done.stdout  # the resolved configuration is printed first
    assert "bicubic" in done.stdout and "SR (last epoch)" in done.stdout
    assert (tmp_path / "run" / "checkpoints" / "epoch_0002" / "state.pt").is_file()

    bad = subprocess.run([sys.executable, "-m", "trainables.train", str(cfg_file), "--set", "loss.family=hinge"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "loss.family" in bad.stderr and "Traceback" not in bad.stderr

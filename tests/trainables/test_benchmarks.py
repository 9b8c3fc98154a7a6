"""Test-set scores of a trial's selected generator: set names, the pixel budget, equality with the evaluate CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.trainables.photos import tiny_config
from trainables import benchmarks as scoring
from trainables import evaluate
from trainables.benchmarks import find_sets, score_benchmarks, select_images, set_key
from trainables.config import load_config
from trainables.models import build_generator
from trainables.train import train


def _image(path: Path, w: int, h: int, seed: int, mode: str = "RGB") -> None:
    """A textured image: random sinusoids plus a little noise, so SR and bicubic differ."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / 32.0
    img = np.zeros((h, w, 3))
    for _ in range(6):
        fx, fy, phase = rng.uniform(0.5, 10, 2).tolist() + [rng.uniform(0, 6.28)]
        img += rng.uniform(0.2, 1, 3) * np.sin(2 * np.pi * (fx * xx + fy * yy) + phase)[..., None]
    img = (img - img.min()) / (img.max() - img.min()) * 235 + rng.normal(0, 3, img.shape)
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).convert(mode).save(path)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train_photos")
    for i in range(6):
        _image(folder / f"img_{i}.png", 96, 96, seed=i)
    return folder


@pytest.fixture(scope="module")
def test_set(tmp_path_factory) -> Path:
    """A benchmark-like folder: odd sizes (modcrop), one gray image."""
    folder = tmp_path_factory.mktemp("sets") / "My Set-1"
    folder.mkdir()
    _image(folder / "a.png", 61, 47, seed=10)
    _image(folder / "b.png", 64, 64, seed=11, mode="L")
    _image(folder / "c.png", 50, 72, seed=12)
    return folder


@pytest.fixture(autouse=True)
def bicubic_cache(tmp_path, monkeypatch) -> Path:
    """Each test keeps bicubic's cached scores in its own folder."""
    monkeypatch.setattr(scoring, "BICUBIC_CACHE", tmp_path / "bicubic-cache")
    return tmp_path / "bicubic-cache"


def tiny(photos: Path, **overrides):
    return tiny_config(photos, width=8, val_images=2, val_patches=2, pretrain_epochs=1, gan_epochs=2,
                       patches_per_epoch=32, batch_size=8, **overrides)


def test_set_key_and_found_sets(tmp_path, monkeypatch, test_set):
    assert [set_key(n) for n in ("Set5", "BSD100", "Urban100", "/data/My Set-1")] == \
        ["set5", "bsd100", "urban100", "my_set_1"]
    (tmp_path / "Set5").mkdir()
    monkeypatch.setenv("SR_BENCHMARKS", str(tmp_path))
    # names resolve under SR_BENCHMARKS where their folder exists; absolute paths as given
    assert find_sets(["Set5", "Set14", str(test_set), "/no/such/folder"]) == \
        [("set5", tmp_path / "Set5"), ("my_set_1", test_set)]


def test_pixel_budget_picks_an_evenly_spaced_subset(tmp_path):
    paths = []
    for i in range(10):  # 20x20 = 400 px each, 4000 in all
        paths.append(tmp_path / f"{i:02d}.png")
        Image.new("RGB", (20, 20)).save(paths[-1])
    assert select_images(paths, None) == paths
    assert select_images(paths, 4000) == paths
    assert [p.name for p in select_images(paths, 1600)] == ["01.png", "03.png", "06.png", "08.png"]
    assert [p.name for p in select_images(paths, 100)] == ["00.png"]  # nothing fits: the smallest image


def test_nothing_to_score_gives_no_metrics(photos, tmp_path, monkeypatch):
    monkeypatch.setenv("SR_BENCHMARKS", str(tmp_path))  # holds none of the default sets
    cfg = tiny(photos)
    weights = build_generator(cfg).state_dict()
    assert score_benchmarks(cfg, weights, 1, torch.device("cpu")) == {}
    assert score_benchmarks(tiny(photos, **{"eval.benchmarks": []}), weights, 1, torch.device("cpu")) == {}


def test_trial_scores_its_best_epoch_as_the_evaluate_cli_does(photos, test_set, tmp_path, capsys):
    # a GAN learning rate high enough to spoil the last epochs: the best validation epoch is an earlier one
    cfg = tiny(photos, **{"eval.benchmarks": [str(test_set)], "eval.max_pixels": None, "optim.lr_g": 0.05})
    reports = []
    final = train(cfg, report=lambda m, c: reports.append(m), out_dir=tmp_path / "run")
    assert [("test_epoch" in m) for m in reports] == [False, False, True]  # the final report carries them
    best = final["best_epoch"]
    assert final["test_epoch"] == best and best < 3
    assert final["test_my_set_1_images"] == final["test_my_set_1_images_total"] == 3

    capsys.readouterr()
    folder = tmp_path / "run" / "checkpoints" / f"epoch_{best:04d}"
    assert evaluate.main(["--checkpoint", str(folder), "--data", str(test_set), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["mean"]
    assert evaluate.main(["--method", "bicubic", "--scale", "2", "--data", str(test_set), "--json"]) == 0
    cli_bicubic = json.loads(capsys.readouterr().out)["mean"]
    assert abs(final["test_my_set_1_psnr"] - cli["psnr"]) < 0.01
    assert final["test_my_set_1_ssim"] == pytest.approx(cli["ssim"], abs=1e-4)
    assert final["test_my_set_1_hf"] == pytest.approx(cli["hf_energy_ratio"], abs=1e-4)
    assert abs(final["test_my_set_1_bicubic_psnr"] - cli_bicubic["psnr"]) < 0.01
    # the last epoch's generator scores differently: the selection mattered
    last = tmp_path / "run" / "checkpoints" / "epoch_0003"
    assert evaluate.main(["--checkpoint", str(last), "--data", str(test_set), "--json"]) == 0
    assert abs(json.loads(capsys.readouterr().out)["mean"]["psnr"] - cli["psnr"]) > 0.01

    # scoring draws no random numbers and changes no weights: the same run without it trains the same
    plain = []
    train(tiny(photos, **{"eval.benchmarks": [], "optim.lr_g": 0.05}), report=lambda m, c: plain.append(m),
          out_dir=tmp_path / "plain")
    assert [m["val_psnr"] for m in plain] == [m["val_psnr"] for m in reports]
    assert "test_epoch" not in plain[-1]

    # a launcher that restarts the finished run gets the same final metrics, test scores included
    again = train(cfg, out_dir=tmp_path / "run", resume_from=last)
    for key in ("test_my_set_1_psnr", "test_my_set_1_bicubic_ssim", "test_epoch", "gan_psnr_drop", "val_grid"):
        assert again[key] == final[key], key


def test_untrained_generator_scores_the_published_bicubic_on_set5(benchmarks, bicubic_cache):
    # the global skip uses the baseline row's kernel: at init (zero last conv) G is bicubic, on Set5 too
    cfg = load_config(overrides={"model.g_channels": 8, "model.g_blocks": 1, "eval.benchmarks": ["Set5"]})
    torch.manual_seed(0)
    scores = score_benchmarks(cfg, build_generator(cfg).state_dict(), 0, torch.device("cpu"))
    assert scores["test_set5_images"] == 5
    assert scores["test_set5_bicubic_psnr"] == pytest.approx(33.66, abs=0.03)  # published x2: 33.66
    assert abs(scores["test_set5_psnr"] - scores["test_set5_bicubic_psnr"]) < 0.01
    assert len(list(bicubic_cache.glob("*.json"))) == 1  # bicubic's scores are kept for the next trial
    again = score_benchmarks(cfg, build_generator(cfg).state_dict(), 0, torch.device("cpu"))
    assert again["test_set5_bicubic_psnr"] == scores["test_set5_bicubic_psnr"]


def test_an_unreadable_test_image_skips_its_set_with_a_note(photos, tmp_path, test_set):
    broken = tmp_path / "Broken"
    broken.mkdir()
    (broken / "x.png").write_bytes(b"not a png")
    cfg = tiny(photos, **{"eval.benchmarks": [str(broken), str(test_set)]})
    notes = []
    scores = score_benchmarks(cfg, build_generator(cfg).state_dict(), 1, torch.device("cpu"), notes.append)
    assert "test_broken_psnr" not in scores and "test_my_set_1_psnr" in scores
    assert len(notes) == 1 and "x.png: not a readable image" in notes[0]

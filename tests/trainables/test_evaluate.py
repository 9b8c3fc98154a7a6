"""Tests for trainables.evaluate: the published bicubic baselines, the table/JSON output, and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainables.errors import UserError
from trainables.evaluate import benchmark_root, evaluate_folder, main, mean_scores, method_upscaler

# Published bicubic baselines (shared/data/sr-benchmarks/README.md): PSNR dB, SSIM, images.
PUBLISHED = {
    ("Set5", 2): (33.66, 0.9299, 5),
    ("Set5", 4): (28.42, 0.8104, 5),
    ("Set14", 2): (30.24, 0.8688, 14),
    ("Set14", 4): (26.00, 0.7027, 14),
}


def _write_images(folder: Path) -> None:
    """Four small images in the modes the CLI must handle: RGB, L, palette, RGBA."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:37]
    smooth = (127 + 80 * np.sin(xx / 4.0) * np.cos(yy / 5.0)).astype(np.uint8)
    rgb = np.stack([smooth, smooth[::-1], 255 - smooth], axis=-1)
    rgb = np.clip(rgb + rng.integers(-10, 11, rgb.shape), 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "a_rgb.png")
    Image.fromarray(smooth).save(folder / "b_gray.png")
    Image.fromarray(rgb).convert("P").save(folder / "c_palette.png")
    Image.fromarray(rgb).convert("RGBA").save(folder / "d_rgba.png")
    (folder / "notes.txt").write_text("not an image")


@pytest.mark.parametrize("dataset,scale", list(PUBLISHED))
def test_bicubic_reproduces_published_baselines(benchmarks, dataset, scale):
    psnr, ssim, count = PUBLISHED[dataset, scale]
    rows = evaluate_folder(benchmarks / dataset, scale, method_upscaler("bicubic", scale))
    assert len(rows) == count
    mean = mean_scores(rows)
    # measured: 33.680/0.9305, 28.432/0.8113, 30.235/0.8692, 25.999/0.7031
    assert mean["psnr"] == pytest.approx(psnr, abs=0.05)
    assert mean["ssim"] == pytest.approx(ssim, abs=0.005)
    assert 0.02 < mean["hf_energy_ratio"] < 0.1  # bicubic restores almost none of the high band
    if dataset == "Set14":
        bridge = next(r for r in rows if r["image"] == "bridge.png")
        assert bridge["channels"] == 1  # mode L is scored on its own channel


def test_cli_json_on_set5(benchmarks):
    out = subprocess.run(
        [sys.executable, "-m", "trainables.evaluate", "--data", str(benchmarks / "Set5"),
         "--scale", "2", "--method", "bicubic", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["scale"] == 2 and result["method"] == "bicubic"
    assert [r["image"] for r in result["images"]] == ["baby.png", "bird.png", "butterfly.png", "head.png", "woman.png"]
    assert result["mean"]["psnr"] == pytest.approx(33.66, abs=0.05)
    assert result["mean"]["ssim"] == pytest.approx(0.9299, abs=0.005)
    baby = result["images"][0]
    assert (baby["width"], baby["height"], baby["channels"]) == (512, 512, 3)


def test_table_on_synthetic_images(tmp_path, capsys):
    _write_images(tmp_path)
    assert main(["--data", str(tmp_path), "--scale", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["image", "size", "PSNR", "SSIM", "HF"]
    names = [line.split()[0] for line in lines[2:6]]
    assert names == ["a_rgb.png", "b_gray.png", "c_palette.png", "d_rgba.png"]
    assert all(line.split()[1] == "36x39" for line in lines[2:6])  # modcropped to multiples of 3
    assert lines[-1].startswith("mean (4)")


def test_evaluate_folder_rows(tmp_path):
    _write_images(tmp_path)
    rows = evaluate_folder(tmp_path, 2, method_upscaler("nearest", 2))
    assert [r["channels"] for r in rows] == [3, 1, 3, 3]
    assert set(rows[0]) == {"image", "width", "height", "channels", "psnr", "ssim", "hf_energy_ratio", "hf_error_ratio"}
    assert (rows[0]["width"], rows[0]["height"]) == (36, 40)
    bicubic = evaluate_folder(tmp_path, 2, method_upscaler("bicubic", 2))
    assert bicubic[1]["psnr"] > rows[1]["psnr"]  # on a smooth image bicubic beats pixel replication


def test_evaluate_folder_checks_upscaler_output(tmp_path):
    _write_images(tmp_path)
    with pytest.raises(ValueError, match="upscale_fn returned"):
        evaluate_folder(tmp_path, 2, lambda lr: lr)


def test_benchmark_root_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SR_BENCHMARKS", str(tmp_path))
    assert benchmark_root() == tmp_path
    monkeypatch.delenv("SR_BENCHMARKS")
    root = benchmark_root()
    assert root is None or (root.is_dir() and root.name == "sr-benchmarks")


def test_data_defaults_to_set5_under_sr_benchmarks(tmp_path, monkeypatch, capsys):
    (tmp_path / "Set5").mkdir()
    _write_images(tmp_path / "Set5")
    monkeypatch.setenv("SR_BENCHMARKS", str(tmp_path))
    assert main(["--scale", "2", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["images"]) == 4


def _one_line_error(argv, capsys) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err
    return lines[0]


def test_error_missing_folder(tmp_path, capsys):
    line = _one_line_error(["--data", str(tmp_path / "nope"), "--scale", "2"], capsys)
    assert f"--data {tmp_path / 'nope'}: no such folder" in line and "png/jpg" in line


def test_error_empty_folder(tmp_path, capsys):
    (tmp_path / "readme.txt").write_text("no images here")
    line = _one_line_error(["--data", str(tmp_path), "--scale", "2"], capsys)
    assert "no images" in line and "png/jpg" in line


def test_error_corrupt_image(tmp_path, capsys):
    (tmp_path / "x.png").write_bytes(b"this is not a png at all" * 10)
    line = _one_line_error(["--data", str(tmp_path), "--scale", "2"], capsys)
    assert "x.png: not a readable image" in line


def test_error_truncated_image(tmp_path, capsys):
    _write_images(tmp_path)
    data = (tmp_path / "a_rgb.png").read_bytes()
    (tmp_path / "a_rgb.png").write_bytes(data[: len(data) // 2])  # valid header, cut-off pixels
    line = _one_line_error(["--data", str(tmp_path), "--scale", "2"], capsys)
    assert "a_rgb.png: not a readable image" in line


def test_error_bad_scale(tmp_path, capsys):
    _write_images(tmp_path)
    line = _one_line_error(["--data", str(tmp_path), "--scale", "8"], capsys)
    assert line == "error: --scale 8: not supported for evaluation (accepted: 2, 3, 4)"
    with pytest.raises(UserError, match="accepted: 2, 3, 4"):
        evaluate_folder(tmp_path, 5, method_upscaler("bicubic", 5))


def test_error_unknown_method(tmp_path, capsys):
    _write_images(tmp_path)
    line = _one_line_error(["--data", str(tmp_path), "--scale", "2", "--method", "lanczos"], capsys)
    assert "--method lanczos" in line and "bicubic, nearest" in line


def test_error_image_too_small(tmp_path, capsys):
    Image.fromarray(np.zeros((10, 12, 3), dtype=np.uint8)).save(tmp_path / "tiny.png")
    line = _one_line_error(["--data", str(tmp_path), "--scale", "4"], capsys)
    assert "tiny.png: 12x8 px is too small for scale 4" in line


def test_error_bad_flag_value_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--scale", "two"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: argument --scale: invalid int value")


def test_cli_error_as_a_subprocess(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "trainables.evaluate", "--data", str(tmp_path / "missing"), "--scale", "5"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr == "error: --scale 5: not supported for evaluation (accepted: 2, 3, 4)\n"

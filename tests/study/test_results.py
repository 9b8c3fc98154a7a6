"""The end-of-study table: a video study's val_tc column and its bicubic_tc reference; epoch counts as integers."""

from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from study.results import format_table, summarize
from study.spec import load_spec

REPO = Path(__file__).resolve().parents[2]


def trial(frames: int, tc: float, psnr: float) -> SimpleNamespace:
    last = {"epoch": 2, "status": "completed", "val_psnr": psnr, "val_tc": tc, "val_ssim": 0.9, "val_hf": 0.1,
            "bicubic_psnr": 32.0, "bicubic_ssim": 0.88, "bicubic_hf": 0.06, "bicubic_tc": 6.0,
            "trial_id": f"t{frames}"}
    history = pd.DataFrame([{**last, "epoch": 1, "val_psnr": psnr - 1, "val_tc": tc + 1}, last])
    return SimpleNamespace(metrics=last, metrics_dataframe=history, error=None, path=f"/x/t{frames}",
                           config={"data.frames": frames, "model.temporal_input": "frames"})


def test_video_study_table_shows_tc_and_the_bicubic_tc_reference():
    spec = load_spec(REPO / "search_spaces" / "video.yaml")
    table = summarize(spec, [trial(1, 5.5, 34.0), trial(5, 5.4, 34.2)])
    assert table["data.frames"].tolist() == [5, 1]  # sorted by the first objective, val_psnr
    assert table["val_tc"].tolist() == [5.4, 5.5]  # read at the best epoch
    text = format_table(spec, table)
    header, _, *rows = text.splitlines()
    cells = [c.strip() for c in rows[-1].strip("|").split("|")]
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert cells[0] == "bicubic (reference)"
    assert cells[columns.index("val_tc")] == "6.0000" and cells[columns.index("val_psnr")] == "32.00"


def test_epoch_counts_print_as_whole_numbers_beside_a_failed_trial():
    spec = load_spec(REPO / "search_spaces" / "video.yaml")
    table = pd.DataFrame([
        {"trial_id": "a", "status": "completed", "seed": 0, "epochs": 3, "best_epoch": 3.0, "val_psnr": 34.0,
         "test_Set5_psnr": 35.1, "test_epoch": 3.0},
        {"trial_id": "b", "status": "failed", "seed": 1, "epochs": 0, "best_epoch": float("nan"),
         "val_psnr": float("nan"), "test_Set5_psnr": float("nan"), "test_epoch": float("nan")}])
    header, _, first, second, _ = format_table(spec, table).splitlines()
    columns = [c.strip() for c in header.strip("|").split("|")]
    rows = [[c.strip() for c in row.strip("|").split("|")] for row in (first, second)]
    for name in ("best_epoch", "test_epoch"):
        assert (rows[0][columns.index(name)], rows[1][columns.index(name)]) == ("3", ""), name
    assert rows[0][columns.index("test_Set5_psnr")] == "35.10"

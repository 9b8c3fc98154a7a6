"""python -m reports.build end to end on the test store: files, embedded images, LaTeX, MLflow logging, errors."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from reports import build


@pytest.fixture(scope="module")
def built(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "demo"
    rc = build.main(["demo", "--tracking-uri", store.uri, "--out", str(out)])
    assert rc == 0
    return out


def test_writes_every_file(built):
    for name in ("report.md", "report.html", "tables.tex", "trials.csv", "trials.parquet", "groups.csv",
                 "figures/samples.png", "figures/psnr_per_epoch.png", "figures/content_loss.png",
                 "figures/importances.png"):
        assert (built / name).is_file(), name
    assert not (built / "figures" / "pareto.png").exists()  # single objective


def test_report_markdown_has_question_tables_and_figures(built):
    md = (built / "report.md").read_text()
    assert "**Question.** Which adversarial loss, at which beta?" in md
    assert "| 1 | lsgan | 0.01 | 2 | **30.50 ± 0.71** |" in md
    assert "| *bicubic* |" in md and "sample std (ddof=1)" in md
    assert "![" in md and "(figures/samples.png)" in md
    assert "| trials | 5 (2 completed, 1 stopped early, 1 diverged, 1 failed) |" in md
    # the setup quotes the plan the study printed, not a re-guess of the spec's defaults
    assert "The plan the study printed at its start" in md and "searcher: tpe (seed 0" in md
    assert "scheduler: none (every trial runs all its epochs)" in md


def test_html_is_self_contained(built):
    html = (built / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 4
    assert "figures/" not in html.split("<body>")[1].replace("figures/samples", "")  # no file links
    assert "<b>30.50 ± 0.71</b>" in html


def test_latex_is_booktabs(built):
    tex = (built / "tables.tex").read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in tex
    assert r"\textbf{30.50 $\pm$ 0.71}" in tex and r"\label{tab:demo-main}" in tex
    assert "val\\_psnr" in tex  # underscores escaped


def test_trials_files_hold_every_trial_and_epoch(built):
    frame = pd.read_parquet(built / "trials.parquet")
    assert len(frame) == 11 + 1  # 11 epochs of history plus one row for the failed trial
    a0 = frame[frame["trial_id"] == "a0"].sort_values("epoch")
    assert a0["val_ssim"].tolist() == [0.80, 0.85, 0.90]
    assert a0["is_best_epoch"].tolist() == [False, True, False]
    assert list(a0["searched"].iloc[0]) == ["loss.beta", "loss.family"]
    csv = pd.read_csv(built / "trials.csv")
    assert len(csv) == 12 and json.loads(csv["searched"].iloc[0]) == ["loss.beta", "loss.family"]
    groups = pd.read_csv(built / "groups.csv")
    assert groups["val_psnr_mean"].iloc[0] == pytest.approx(30.5)


def test_sample_grid_is_the_best_trial_at_its_best_epoch(store, demo, grid_color):
    best = build.tables.best_rows(demo.trials, demo.history, demo.spec)
    keys = build.tables.searched_keys(demo.spec, demo.trials)
    best["group"] = build.tables.group_columns(best, demo.spec, keys)["group"]
    groups = build.tables.group_table(best, demo.spec, keys)
    items = build._grid_items(demo, best, groups, 8, "val_psnr")
    assert len(items) == 2  # the failed group logged no grid
    title, image = items[0]
    assert title.startswith("1. family=lsgan, beta=0.01") and "epoch 2" in title and "trial a1" in title
    assert tuple(image[0, 0]) == grid_color(1, 2)  # a1 is the second trial logged; its epoch-2 grid


def test_report_logged_to_the_parent_run(built, store):
    from mlflow.tracking import MlflowClient

    files = {a.path for a in MlflowClient(store.uri).list_artifacts(store.parents["demo"], "report")}
    assert {"report/report.html", "report/report.md", "report/tables.tex", "report/figures"} <= files


def test_multi_objective_report_has_a_pareto_front(store, tmp_path, capsys):
    assert build.main(["multi", "--tracking-uri", store.uri, "--out", str(tmp_path), "--no-log"]) == 0
    assert (tmp_path / "figures" / "pareto.png").is_file()
    md = (tmp_path / "report.md").read_text()
    assert "No sample grids were logged" in md and "HF error" in md
    assert "--no-log" in capsys.readouterr().out


def test_unknown_and_empty_studies_exit_2_with_one_line(store, tmp_path, capsys):
    for name, message in (("nope", "error: no study named 'nope'"), ("empty", "has no trials yet")):
        assert build.main([name, "--tracking-uri", store.uri, "--out", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / name).exists()


def test_unfinished_study_builds_what_exists_and_says_so(store, tmp_path, capsys):
    assert build.main(["running", "--tracking-uri", store.uri, "--out", str(tmp_path), "--no-log"]) == 0
    out = capsys.readouterr().out
    assert "note: study 'running' is unfinished (parent run RUNNING, 1 of 2 trials still running)" in out
    md = (tmp_path / "report.md").read_text()
    assert "is unfinished" in md and "Parameter importances skipped" in md


def test_bad_flags_are_user_errors(store, tmp_path, capsys):
    assert build.main(["demo", "--tracking-uri", store.uri, "--bins", "0", "--out", str(tmp_path)]) == 2
    assert "--bins 0" in capsys.readouterr().err
    assert build.main(["demo", "--tracking-uri", f"sqlite:///{tmp_path}/none.db"]) == 2
    assert "no MLflow store" in capsys.readouterr().err


def test_a_study_whose_trials_all_failed_still_builds(demo, tmp_path):
    import dataclasses

    failed = dataclasses.replace(demo, trials=demo.trials[demo.trials["status"] == "failed"].reset_index(drop=True),
                                 history=demo.history.iloc[0:0])
    result = build.write_report(failed, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "| 1 | bce | 0.05 | 1 | — | — | — | — | 0/1 | 0/1 | — |" in md
    assert "No sample grids were logged" in md and "Parameter importances skipped" in md
    assert (tmp_path / "trials.parquet").is_file() and len(pd.read_parquet(tmp_path / "trials.parquet")) == 1
    assert "| 1 | bce |" in result.main_md


@pytest.mark.slow
@pytest.mark.timeout(1800)  # may include the session's smoke study (tests/conftest.py)
def test_report_of_the_real_smoke_study(smoke_study):
    """After `python -m study.run search_spaces/smoke.yaml`, `python -m reports.build smoke` writes every file."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run([sys.executable, "-m", "reports.build", "smoke"], cwd=smoke_study, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = smoke_study / "reports_out" / "smoke"
    for name in ("report.md", "report.html", "tables.tex", "trials.csv", "trials.parquet",
                 "figures/samples.png", "figures/psnr_per_epoch.png", "figures/content_loss.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    text = (out / "report.md").read_text()
    assert "bicubic" in text and "family" in text
    assert "scheduler: asha on epoch (grace period 1, reduction factor 2" in text
    trials = pd.read_parquet(out / "trials.parquet")
    assert trials["trial_id"].nunique() == 4

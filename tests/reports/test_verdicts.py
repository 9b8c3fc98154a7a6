"""Claim verdicts on MLflow stores written by the study's own trackers, with known truth.

Five seeds per group, the validation PSNR of lsgan and bce drawn as 30 dB (+1 dB where the
truth says so) plus N(0, 0.1 dB) noise: a 1 dB effect holds, no effect is inconclusive,
the opposite effect is contradicted, one seed is not testable; the bootstrap intervals
equal scipy's own; a setting that differs between the groups is listed as a confound;
the report opens with the verdicts and shows one PSNR / SSIM pair per benchmark set.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from reports import build, tables, verdicts
from reports.load import load_study
from tests.reports.conftest import spec_of

SEEDS = 5
NOISE = np.random.default_rng(0).normal(0.0, 0.1, size=(2, SEEDS))  # (group, seed), dB
FAMILY = {"loss.family": {"type": "categorical", "values": ["lsgan", "bce"]}}
CLAIM = {"name": "lsgan_better", "statement": "LSGAN keeps more fidelity", "metric": "val_psnr",
         "better": "higher", "compare": {"key": "loss.family", "values": ["lsgan", "bce"]}}


def _spec(name: str, repeats: int, space: dict | None = None, claims: list | None = None) -> dict:
    return {"name": name, "description": f"known truth: {name}", "base": {"model.d_norm": "layer"},
            "space": space or FAMILY, "searcher": {"algorithm": "random"}, "trials": 2, "repeats": repeats,
            "claims": claims if claims is not None else [CLAIM]}


def _log(uri: str, raw: dict, trials: list[tuple[dict, int, list[dict]]]) -> None:
    """Write a study the way `python -m study.run` does: StudyTracker parent, TrialTracker children."""
    from study.plan import plan
    from study.spec import from_dict, spec_hash, trial_config
    from study.tracking import StudyTracker, TrialTracker

    spec = from_dict(raw)
    study = StudyTracker(uri, spec.name)
    study.start(spec.dump_yaml(), plan(spec), spec_hash(spec), spec.description)
    settings = study.worker_settings(spec_hash(spec))
    for i, (sampled, repeat, epochs) in enumerate(trials):
        trial = TrialTracker(**settings, trial_id=f"{spec.name}-{i}", trial_name=f"t{i}", sampled=sampled,
                             repeat=repeat)
        trial.start(trial_config(spec, sampled, repeat))
        for e, m in enumerate(epochs, start=1):
            last = e == len(epochs)
            trial.log_epoch({"epoch": e, "phase": "pretrain" if e == 1 else "gan",
                             "status": "completed" if last else "running", **m})
        trial.finish("completed")
    study.finish("FINISHED")


def _epochs(psnr: float, final: dict | None = None) -> list[dict]:
    """Two epochs, the second the best: (psnr - 0.5, psnr); `final` joins the last epoch's result."""
    common = {"val_ssim": 0.9, "val_hf": 0.8, "bicubic_psnr": 28.0, "bicubic_ssim": 0.85, "bicubic_hf": 0.5}
    return [{"val_psnr": psnr - 0.5, **common}, {"val_psnr": psnr, **common, **(final or {})}]


def _family_trials(effect: float, seeds: int = SEEDS, **extra) -> list:
    out = []
    for g, family in enumerate(("lsgan", "bce")):
        for s in range(seeds):
            psnr = 30.0 + (effect if family == "lsgan" else 0.0) + NOISE[g, s]
            out.append(({"loss.family": family, **extra.get(family, {})}, s, _epochs(psnr)))
    return out


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    root = tmp_path_factory.mktemp("verdicts")
    uri = f"sqlite:///{root}/mlflow.db"
    _log(uri, _spec("holds", SEEDS), _family_trials(1.0))
    _log(uri, _spec("null", SEEDS), _family_trials(0.0))
    _log(uri, _spec("opposite", SEEDS), _family_trials(-1.0))
    _log(uri, _spec("one_seed", 1), _family_trials(1.0, seeds=1))
    # lsgan trials all ran at lr_g 1e-4 and bce at 2e-4: a confound the report must name
    lr = {"optim.lr_g": {"type": "categorical", "values": [0.0001, 0.0002]}}
    _log(uri, _spec("confound", 2, {**FAMILY, **lr}),
         _family_trials(1.0, seeds=2, lsgan={"optim.lr_g": 0.0001}, bce={"optim.lr_g": 0.0002}))
    # test-set scores in the final result (Set5 and Set14), and a bicubic-baseline claim on them
    final = {"test_set5_psnr": 33.0, "test_set5_ssim": 0.92, "test_set5_bicubic_psnr": 31.5,
             "test_set5_bicubic_ssim": 0.90, "test_set14_psnr": 30.0, "test_set14_ssim": 0.88,
             "test_set14_bicubic_psnr": 29.0, "test_set14_bicubic_ssim": 0.86, "test_epoch": 2.0}
    baseline = {"name": "beats_bicubic", "metric": "test_set5_psnr", "better": "higher",
                "compare": {"baseline": "bicubic"}}
    _log(uri, _spec("tested", 2, claims=[CLAIM, baseline]),
         [({"loss.family": f}, s, _epochs(30.0 + s, {**final, "test_set5_psnr": 33.0 + 0.1 * s}))
          for f in ("lsgan", "bce") for s in range(2)])
    return uri


def _judge(uri: str, name: str):
    study = load_study(name, uri)
    best = tables.best_rows(study.trials, study.history, study.spec)
    claims = study.spec.claims
    assert not study.notes and claims
    return best, verdicts.judge_claims(claims, best)


def test_a_1db_effect_over_5_seeds_holds(uri):
    best, [(claim, verdict, [pair])] = _judge(uri, "holds")
    assert verdict == "holds" and pair.verdict == "holds"
    assert len(pair.values_a) == len(pair.values_b) == SEEDS
    assert pair.diff == pytest.approx(1.0 + NOISE[0].mean() - NOISE[1].mean())
    assert pair.ci_diff[0] > 0.8 and pair.ci_diff[1] < 1.2
    assert pair.p_better == 1.0  # every lsgan seed beats every bce seed
    assert pair.confounds == []


def test_no_effect_is_inconclusive_with_a_seed_estimate(uri):
    _, [(_, verdict, [pair])] = _judge(uri, "null")
    assert verdict == "inconclusive"
    assert pair.ci_diff[0] < 0 < pair.ci_diff[1]
    spread = np.sqrt((NOISE[0].var(ddof=1) + NOISE[1].var(ddof=1)) / 2)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    expected = int(np.ceil(2 * (z * spread / abs(NOISE[0].mean() - NOISE[1].mean())) ** 2))
    assert pair.seeds_needed == pytest.approx(max(2, expected), abs=1)


def test_the_opposite_effect_is_contradicted(uri):
    _, [(_, verdict, [pair])] = _judge(uri, "opposite")
    assert verdict == "contradicted" and pair.ci_diff[1] < 0 and pair.p_better == 0.0


def test_one_seed_is_not_testable(uri):
    _, [(_, verdict, [pair])] = _judge(uri, "one_seed")
    assert verdict == "not testable" and len(pair.values_a) == 1
    assert np.isnan(pair.ci_diff[0])


def test_intervals_equal_scipy_directly(uri):
    _, [(_, _, [pair])] = _judge(uri, "holds")
    a, b = 31.0 + NOISE[0], 30.0 + NOISE[1]
    np.testing.assert_allclose(np.sort(pair.values_a), np.sort(a))
    own = stats.bootstrap((pair.values_a,), np.mean, n_resamples=9999, confidence_level=0.95,
                          method="percentile", rng=np.random.default_rng(0)).confidence_interval
    assert pair.ci_a == pytest.approx((own.low, own.high))
    diff = stats.bootstrap((pair.values_a, pair.values_b), lambda x, y, axis: x.mean(axis) - y.mean(axis),
                           n_resamples=9999, method="percentile", vectorized=True,
                           rng=np.random.default_rng(0)).confidence_interval
    assert pair.ci_diff == pytest.approx((diff.low, diff.high))
    u = stats.mannwhitneyu(pair.values_a, pair.values_b).statistic
    assert pair.p_better == pytest.approx(u / (SEEDS * SEEDS))


def test_a_setting_that_differs_between_groups_is_listed(uri, tmp_path):
    _, [(_, _, [pair])] = _judge(uri, "confound")
    assert pair.confounds == ["optim.lr_g: 0.0001 vs 0.0002"]
    assert build.main(["confound", "--tracking-uri", uri, "--out", str(tmp_path / "r"), "--no-log"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "optim.lr_g: 0.0001 vs 0.0002" in md


def test_report_opens_with_verdicts_then_test_sets(uri, tmp_path):
    assert build.main(["tested", "--tracking-uri", uri, "--out", str(tmp_path / "r"), "--no-log"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert md.index("## Claims") < md.index("### Test sets") < md.index("### Validation") < md.index("## Setup")
    assert "| `lsgan_better` | **inconclusive** |" in md or "| `lsgan_better` | **" in md
    assert "| `beats_bicubic` | **holds** | SR vs bicubic |" in md
    header = next(line for line in md.splitlines() if "Set5 PSNR" in line)
    assert header.index("Set5 PSNR") < header.index("Set5 SSIM") < header.index("Set14 PSNR") < \
        header.index("Set14 SSIM") < header.index("test epoch")
    assert "| *bicubic* |" in md and "*31.50*" in md  # the Set5 bicubic row
    assert "best validation epoch" in md


def test_no_benchmark_scores_is_one_line(uri, tmp_path):
    assert build.main(["holds", "--tracking-uri", uri, "--out", str(tmp_path / "r"), "--no-log"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "No test-set scores: no benchmark folder was found" in md and "SR_BENCHMARKS" in md
    assert "Set5 PSNR" not in md


def test_final_result_metrics_are_read_from_the_last_epoch_not_the_best():
    import pandas as pd

    trials = pd.DataFrame({"run_id": ["r"], "status": ["completed"]})
    history = pd.DataFrame({"run_id": ["r", "r"], "trial_id": ["t", "t"], "epoch": [1, 2],
                            "val_psnr": [31.0, 30.0], "gan_psnr_drop": [0.0, 1.0],
                            "test_set5_psnr": [float("nan"), 33.0], "test_epoch": [float("nan"), 1.0]})
    best = tables.best_rows(trials, history, spec_of(objective={"metric": "val_psnr", "mode": "max"})).iloc[0]
    assert best["best_epoch"] == 1 and best["val_psnr"] == 31.0  # per-epoch metrics at the best epoch
    assert best["test_set5_psnr"] == 33.0 and best["test_epoch"] == 1.0 and best["gan_psnr_drop"] == 1.0

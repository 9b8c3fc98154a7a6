"""reports.load against a real MLflow store: frames, parsed params, full histories, clear errors."""

from __future__ import annotations

import pytest

from reports import load, tables
from reports.load import load_study, parse_param
from trainables.errors import UserError


@pytest.mark.parametrize("text, value", [("0.004", 0.004), ("2", 2), ("None", None), ("True", True),
                                         ("lsgan", "lsgan"), ("1e-05", 1e-5)])
def test_parse_param(text, value):
    assert parse_param(text) == value


def test_one_row_per_trial_with_tags_and_parsed_params(demo):
    t = demo.trials.set_index("trial_id")
    assert list(demo.trials["trial_id"]) == ["a0", "a1", "b0", "b1", "c0"]  # start order
    assert dict(t["status"]) == {"a0": "completed", "a1": "completed", "b0": "stopped early", "b1": "diverged",
                                 "c0": "failed"}
    assert t.loc["a1", "param.loss.beta"] == 0.01 and t.loc["a1", "param.loss.family"] == "lsgan"
    assert t.loc["a1", "seed"] == 1 and t.loc["a1", "repeat"] == 1 and t.loc["a1", "param.seed"] == 1
    assert t.loc["a0", "param.scale"] == 2  # the full resolved config, not only searched keys
    assert t.loc["a0", "searched"] == ["loss.beta", "loss.family"]
    assert t.loc["c0", "error"] == "RuntimeError: out of memory" and t.loc["c0", "epochs"] == 0
    assert t.loc["b0", "epochs"] == 2 and t.loc["a0", "run_state"] == "FINISHED"
    assert demo.parent["status"] == "FINISHED"
    assert demo.parent["description"] == "Which adversarial loss, at which beta?"
    assert demo.spec.repeats == 2 and not demo.unfinished and not demo.notes


def test_history_holds_every_epoch_and_the_latest_value_per_step(demo):
    h = demo.history
    assert len(h) == 3 + 3 + 2 + 3  # the failed trial logged nothing
    a0 = h[h["trial_id"] == "a0"].set_index("epoch")
    assert a0["val_psnr"].tolist() == [29.0, 30.0, 29.5]  # not just the last value, and not the stale 10.0
    assert a0["val_ssim"].tolist() == [0.80, 0.85, 0.90]
    assert a0["grid_artifact"].map(lambda p: p.startswith("images/sample_grid+step+")).all()
    assert "+step+2+" in a0.loc[2, "grid_artifact"]


def test_multi_objective_study_without_grids(multi):
    assert multi.history["grid_artifact"].isna().all()
    assert multi.spec.objective.to_dict() == {"metrics": ["val_psnr", "val_hf_err"], "modes": ["max", "min"]}


def test_a_spec_that_no_longer_validates_gives_a_default_spec_and_a_note(store):
    s = load_study("legacy", store.uri)
    [note] = s.notes
    assert note.startswith("the parent run's spec.yaml does not validate with this version (space.loss.old_key")
    assert s.spec.name == "legacy" and s.spec.trials == 5 and s.spec.space == {} and s.spec.claims == ()
    assert s.spec.objective.to_dict() == {"metric": "val_psnr", "mode": "max"}
    assert tables.searched_keys(s.spec, s.trials) == ["loss.beta", "loss.family"]  # from the trials' tags
    best = tables.best_rows(s.trials, s.history, s.spec)
    assert "resources per trial" not in dict(tables.compute_used(best, s.history, s.spec, s.parent))  # not guessed


def test_unknown_study_names_the_known_ones(store):
    with pytest.raises(UserError, match=r"no study named 'nope'.*demo"):
        load_study("nope", store.uri)


def test_empty_and_orphan_studies(store):
    with pytest.raises(UserError, match="has no trials yet"):
        load_study("empty", store.uri)
    with pytest.raises(UserError, match="no srstudy parent run"):
        load_study("orphan", store.uri)


def test_unfinished_study_loads(store):
    s = load_study("running", store.uri)
    assert s.unfinished and s.parent["status"] == "RUNNING"
    assert sorted(s.trials["status"]) == ["completed", "running"]


def test_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path):
    db = tmp_path / "nothing.db"
    with pytest.raises(UserError, match="no MLflow store"):
        load_study("demo", f"sqlite:///{db}")
    assert not db.exists()


def test_default_uri_is_absolute(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load.resolve_tracking_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://x:5000")
    assert load.resolve_tracking_uri(None) == "http://x:5000"
    assert load.resolve_tracking_uri("sqlite:////a.db") == "sqlite:////a.db"

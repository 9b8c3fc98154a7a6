"""`--resume` finds the study's MLflow parent run from MLflow's tags (not a local file), so object storage resumes too."""

from __future__ import annotations

import pytest

from study.tracking import StudyTracker


@pytest.fixture
def tracker(tmp_path):
    return StudyTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "lookup")


def test_the_latest_parent_of_the_same_spec_is_found(tracker):
    assert tracker.find_parent("aaa") is None  # nothing yet: a new parent run is started
    first = tracker.start("name: lookup\n", ["plan"], "aaa", "")
    assert tracker.find_parent("aaa") == first  # RUNNING (the driver was killed)
    tracker.finish("KILLED")  # interrupted: still to be continued
    assert tracker.find_parent("aaa") == first
    assert tracker.find_parent("bbb") is None  # another spec is another study

    tracker.start("name: lookup\n", ["plan"], "aaa", "", resume_run_id=first)
    assert tracker.client.get_run(first).info.status == "RUNNING"  # the same parent, reopened
    tracker.finish("FINISHED")
    assert tracker.find_parent("aaa") == first  # --resume of a finished study reopens it: still one parent

    # one store, one test: creating an MLflow schema costs seconds
    new = tracker.start("name: lookup\n", ["plan"], "aaa", "")  # the same study run again, after the first
    assert new != first and tracker.find_parent("aaa") == new

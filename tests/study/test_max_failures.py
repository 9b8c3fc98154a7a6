"""`resources.max_failures`: worker restarts per trial, a spec setting with a default of 2, passed to Ray Train."""

from __future__ import annotations

import inspect

import pytest

from study import runner
from study.plan import plan
from study.spec import StudySpecError, from_dict

SPEC = {"name": "f", "space": {"loss.beta": {"type": "uniform", "low": 0.0, "high": 0.1}}, "trials": 1}


def test_default_is_two_restarts_and_the_plan_says_so():
    spec = from_dict(SPEC)
    assert spec.resources.max_failures == 2
    assert "up to 2 worker restart(s)" in "\n".join(plan(spec))
    assert from_dict({**SPEC, "resources": {"max_failures": 0}}).resources.max_failures == 0


@pytest.mark.parametrize("value", [-1, 1.5, "many", None])
def test_bad_values_are_refused_naming_the_field(value):
    with pytest.raises(StudySpecError, match=r"^resources\.max_failures: "):
        from_dict({**SPEC, "resources": {"max_failures": value}})


def test_the_trial_driver_gives_it_to_ray_train():
    # the Train run's FailureConfig takes the spec's value (Tune itself never retries a trial)
    assert "FailureConfig(max_failures=r.max_failures)" in inspect.getsource(runner.trial_driver)

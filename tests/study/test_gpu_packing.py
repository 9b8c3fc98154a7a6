"""Several single-worker trials on one GPU: the spec accepts a fraction, refuses it for DDP trials, and the
runner packs that many trials per card."""

import pytest

from study import runner
from study.spec import StudySpecError, from_dict


def _spec(**resources):
    return from_dict({"name": "t", "space": {"loss.beta": {"type": "uniform", "low": 0.001, "high": 0.01}},
                      "base": {"runtime.device": "cuda"}, "trials": 16, "resources": resources})


def test_a_fraction_of_a_gpu_is_accepted_for_single_worker_trials():
    assert _spec(workers=1, gpus_per_worker=0.25).resources.gpus_per_worker == 0.25
    assert _spec(workers=2, gpus_per_worker=1).resources.workers == 2  # whole GPUs for DDP trials


@pytest.mark.parametrize("resources, message", [
    ({"workers": 2, "gpus_per_worker": 0.5},
     "resources.gpus_per_worker: got 0.5 with 2 workers; a fraction of a GPU is for single-worker trials"),
    ({"workers": 1, "gpus_per_worker": 1.5},
     "resources.gpus_per_worker: got 1.5, expected a fraction below 1 or a whole number of GPUs"),
    ({"workers": 1, "gpus_per_worker": 0.33333},
     "resources.gpus_per_worker: got 0.33333, expected at most 4 decimals"),
])
def test_impossible_gpu_shares_are_refused_in_one_line(resources, message):
    with pytest.raises(StudySpecError, match="^" + message.replace("(", r"\(").replace(")", r"\)")) as err:
        _spec(**resources)
    assert "\n" not in str(err.value)


def test_fractional_gpus_pack_trials_per_card(monkeypatch):
    monkeypatch.setattr(runner.ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 1.0})
    assert runner.plan_concurrency(_spec(workers=1, cpus_per_worker=1, gpus_per_worker=0.25)) == 4
    assert runner.plan_concurrency(_spec(workers=1, cpus_per_worker=1, gpus_per_worker=0.125)) == 8
    assert runner.plan_concurrency(_spec(workers=1, cpus_per_worker=1, gpus_per_worker=0.1)) == 10
    assert runner.plan_concurrency(_spec(workers=1, cpus_per_worker=1, gpus_per_worker=1)) == 1
    # CPUs bound it too: 8 trials of 0.125 GPU want 8 x 3 CPUs
    assert runner.plan_concurrency(_spec(workers=1, cpus_per_worker=3, gpus_per_worker=0.125)) == 5
    monkeypatch.setattr(runner.ray, "cluster_resources", lambda: {"CPU": 64.0, "GPU": 3.0})
    assert runner.plan_concurrency(_spec(workers=1, cpus_per_worker=1, gpus_per_worker=0.3)) == 9  # 3 a card: a trial cannot span two

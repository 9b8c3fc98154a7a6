"""PBT glue without a cluster: Tune domains, the scheduler's settings, no decision on a last epoch, origin files."""

import json

import pytest
from ray import tune
from ray.tune.schedulers import TrialScheduler

from study.pbt import (ORIGIN_FILE, LastEpochPBT, checkpoint_config, hp_metrics, make_scheduler, param_space,
                       tune_domain, write_origin)
from study.space import Param
from study.spec import from_dict, trial_config
from tests.study.specs import pbt_raw

# one pretraining epoch: the first decision after epoch 3, the last epoch is 5
SPEC = pbt_raw(pretrain_epochs=1)


def test_tune_domains():
    assert tune_domain(Param("categorical", values=(1, 2, 3))) == [1, 2, 3]
    assert isinstance(tune_domain(Param("loguniform", low=1e-5, high=1e-3)).sampler, tune.search.sample.LogUniform)
    assert tune_domain(Param("int", low=1, high=7, step=3)) == [1, 4, 7]
    d = tune_domain(Param("int", low=1, high=4, log=True))
    assert {d.sample() for _ in range(300)} == {1, 2, 3, 4}


def test_scheduler_carries_the_spec():
    spec = from_dict(SPEC)
    pbt = make_scheduler(spec)
    assert isinstance(pbt, LastEpochPBT)
    assert (pbt._time_attr, pbt._metric, pbt._mode) == ("epoch", "val_psnr", "max")
    assert (pbt._perturbation_interval, pbt._burn_in_period, pbt._quantile_fraction) == (2, 3, 0.5)
    assert pbt._synch is True and pbt._hyperparam_mutations["schedule.d_steps_per_g"] == [1, 2, 3]
    assert list(param_space(spec)) == ["optim.lr_g"]
    choice = param_space(from_dict({**SPEC, "space": {"loss.beta": {"type": "categorical", "values": [0.0, 0.1]}}}))
    assert isinstance(choice["loss.beta"], tune.search.sample.Categorical)  # a bare list would be one value
    assert checkpoint_config(spec).num_to_keep == 5


def test_no_decision_on_a_trials_last_epoch():
    pbt = make_scheduler(from_dict(SPEC))
    # on a last epoch the base class is never asked (it would pause the trial to wait for the others)
    assert pbt.on_trial_result(None, object(), {"epoch": 5, "val_psnr": 30.0, "status": "completed"}) == \
        TrialScheduler.CONTINUE
    assert pbt.on_trial_result(None, object(), {"epoch": 3, "status": "diverged"}) == TrialScheduler.CONTINUE


def test_values_in_force_and_the_origin_file(tmp_path):
    spec = from_dict(SPEC)
    cfg = trial_config(spec, {"optim.lr_g": 2e-4, "schedule.d_steps_per_g": 3})
    hp = hp_metrics(cfg, ["optim.lr_g", "schedule.d_steps_per_g"])
    assert hp == {"hp/optim.lr_g": pytest.approx(2e-4), "hp/schedule.d_steps_per_g": 3.0}
    write_origin(str(tmp_path), "abc_00001", 3, hp)
    assert json.loads((tmp_path / ORIGIN_FILE).read_text()) == {"trial_id": "abc_00001", "epoch": 3, "hp": hp}

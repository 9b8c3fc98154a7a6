"""Population-based training in the study spec: the settings, the mutated keys, one-line errors."""

import pytest
import yaml

from study.mutations import MUTABLE
from study.plan import plan
from study.spec import from_dict, searched_keys, spec_hash, trial_config
from tests.study.specs import pbt_raw, spec_error


def test_pbt_settings_load_with_the_burn_in_after_pretraining():
    spec = from_dict(pbt_raw())
    p = spec.scheduler.pbt
    assert spec.scheduler.type == "pbt"
    assert (p.perturbation_interval, p.quantile_fraction, p.resample_probability) == (2, 0.5, 0.1)
    assert p.burn_in == 4  # pretrain_epochs 2 + one interval: the first decision compares GAN epochs
    assert list(p.mutations) == ["optim.lr_g", "optim.lr_d", "schedule.d_steps_per_g"]
    assert p.mutations["optim.lr_d"].type == "categorical"
    assert p.mutations["optim.lr_d"].values == (1e-5, 1e-4, 1e-3)
    assert p.mutations["optim.lr_g"].type == "loguniform"
    # a trial's Tune config may hold the space's keys and the mutated ones
    assert searched_keys(spec) == ("optim.lr_g", "optim.lr_d", "schedule.d_steps_per_g")
    cfg = trial_config(spec, {"optim.lr_g": 2e-4, "optim.lr_d": 1e-3, "schedule.d_steps_per_g": 3})
    assert (cfg.optim.lr_g, cfg.optim.lr_d, cfg.schedule.d_steps_per_g) == (2e-4, 1e-3, 3)


def test_pbt_round_trips_and_leaves_other_schedulers_hashes_alone():
    spec = from_dict(pbt_raw())
    again = from_dict(yaml.safe_load(spec.dump_yaml()))
    assert again.scheduler == spec.scheduler and spec_hash(again) == spec_hash(spec)
    # lists stay lists in the written spec
    assert spec.to_dict()["scheduler"]["mutations"]["optim.lr_d"] == [1e-5, 1e-4, 1e-3]
    asha = pbt_raw()
    asha["scheduler"] = {"type": "asha"}
    asha["searcher"] = {"algorithm": "tpe"}
    assert list(from_dict(asha).to_dict()["scheduler"]) == ["type", "grace_period", "reduction_factor", "max_t"]


def test_plan_names_the_pbt_schedule():
    text = "\n".join(plan(from_dict(pbt_raw())))
    assert "scheduler: pbt on epoch (decisions every 2 epoch(s) from epoch 4, bottom 0.5 copies top 0.5" in text
    assert "mutates optim.lr_d: categorical [1e-05, 0.0001, 0.001]" in text


def test_an_explicit_burn_in_is_kept():
    r = pbt_raw()
    r["scheduler"]["burn_in"] = 3
    assert from_dict(r).scheduler.pbt.burn_in == 3


def _sched(**changes):
    def change(r):
        r["scheduler"].update(changes)
    return change


def _mut(mutations):
    return _sched(mutations=mutations)


def _top(key, value):
    def change(r):
        r[key] = value
    return change


@pytest.mark.parametrize("change, message", [
    (_mut({"model.g_channels": [16, 32]}),
     "scheduler.mutations.model.g_channels: not safe to change mid-run (a trial continues from another trial's "
     "checkpoint); mutable keys: " + ", ".join(MUTABLE)),
    (_mut({"optim.lrg": [1e-4]}), "scheduler.mutations.optim.lrg: unknown key; did you mean optim.lr_g"),
    (_mut({"optim.lr_g": {"type": "grid", "values": [1e-4]}}),
     "scheduler.mutations.optim.lr_g.type: a grid is not a mutation"),
    (_mut({"loss.beta": [-1.0, 0.1]}), "scheduler.mutations.loss.beta: value -1.0 gives an invalid trial config"),
    (_mut({"loss.beta": {"type": "uniform", "low": 0.1, "high": 0.01}}),
     "scheduler.mutations.loss.beta.high: got 0.01, expected > low (0.1)"),
    (_mut({"schedule.d_steps_per_g": {"type": "uniform", "low": 1, "high": 3}}),
     "scheduler.mutations.schedule.d_steps_per_g.type: a uniform range gives floats"),
    (_mut({"loss.beta": 0.01}), "scheduler.mutations.loss.beta: got 0.01, expected a list of values or a param"),
    (_mut({}), "scheduler.mutations: got {}, expected a mapping of trial-config keys"),
    (_sched(quantile_fraction=0.75), "scheduler.quantile_fraction: got 0.75, expected > 0 and <= 0.5"),
    (_sched(resample_probability=1.5), "scheduler.resample_probability: got 1.5, expected 0 to 1"),
    (_sched(perturbation_interval=0), "scheduler.perturbation_interval: got 0, expected >= 1 epoch"),
    (_sched(burn_in=6), "scheduler.burn_in: first decision at epoch 6, but trials run 6 epochs"),
    (_sched(perturbation_interval=4), "scheduler.burn_in: first decision at epoch 6, but trials run 6 epochs"),
    (_sched(pbt={"mutations": {}}), "scheduler.pbt: unknown key"),
    (_sched(type="asha"), "scheduler.perturbation_interval: a pbt setting; set scheduler.type: pbt (got asha)"),
    (_top("searcher", {"algorithm": "tpe"}), "searcher.algorithm: got tpe; scheduler pbt draws its initial "
                                             "population at random"),
    (_top("repeats", 2), "repeats: got 2; under pbt trials exchange weights"),
    (_top("trials", 1), "trials: got 1; pbt needs a population of at least 2 trials"),
    (_top("objective", {"metrics": ["val_psnr", "val_hf"], "modes": ["max", "max"]}),
     "scheduler.type: pbt ranks trials on one metric"),
    (_top("base", {"optim.lr_d": 1e-4, "schedule.pretrain_epochs": 2, "schedule.gan_epochs": 4}),
     "scheduler.mutations.optim.lr_d: also fixed in base (base.optim.lr_d)"),
])
def test_bad_pbt_settings_fail_in_one_line(change, message):
    r = pbt_raw()
    change(r)
    text = spec_error(r)
    assert text.startswith(message), text


def test_every_mutable_key_is_a_trial_config_key():
    r = pbt_raw()
    r["scheduler"]["mutations"] = {k: {"type": "uniform", "low": 0.05, "high": 0.5} if k != "schedule.d_steps_per_g"
                                   else [1, 2] for k in MUTABLE}
    assert list(from_dict(r).scheduler.pbt.mutations) == list(MUTABLE)

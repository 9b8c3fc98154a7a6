"""The search space in Optuna's terms: distributions, the grid, samplers; sampled values make valid configs."""

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import GridSampler, NSGAIISampler, RandomSampler, TPESampler
from ray import cloudpickle

from study.space import grid_values, optuna_space
from study.spec import from_dict, trial_config

SPACE = {
    "loss.family": {"type": "categorical", "values": ["bce", "lsgan", "wgan_gp"]},
    "loss.beta": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
    "optim.beta1_g": {"type": "uniform", "low": 0.5, "high": 0.9},
    "model.g_blocks": {"type": "int", "low": 2, "high": 8, "step": 2},
    "schedule.batch_size": {"type": "int", "low": 4, "high": 64, "log": True},
    "optim.grad_clip": {"type": "categorical", "values": [None, 1.0]},
}
GRID = {
    "loss.family": {"type": "grid", "values": ["bce", "lsgan", "wgan_gp"]},
    "model.upsampler": {"type": "categorical", "values": ["pixel_shuffle", "resize_conv"]},
}


def spec(space=SPACE, algorithm="tpe", **extra):
    extra.setdefault("base", {"model.d_norm": "layer"})  # wgan_gp is sampled: it refuses batch norm in D
    return from_dict({"name": "s", "trials": extra.pop("trials", 8), "space": space,
                      "searcher": {"algorithm": algorithm, "seed": 3, "n_startup_trials": 2}, **extra})


MULTI = {"objective": {"metrics": ["val_psnr", "val_hf"], "modes": ["max", "max"]}}


def test_optuna_space_types_and_bounds():
    dists = optuna_space(spec().space)
    assert list(dists) == list(SPACE)
    assert dists["loss.family"] == CategoricalDistribution(["bce", "lsgan", "wgan_gp"])
    assert dists["loss.beta"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert dists["optim.beta1_g"] == FloatDistribution(0.5, 0.9, log=False)
    assert dists["model.g_blocks"] == IntDistribution(2, 8, step=2)
    assert dists["schedule.batch_size"] == IntDistribution(4, 64, log=True)
    assert dists["optim.grad_clip"] == CategoricalDistribution([None, 1.0])


def test_grid_params_become_categorical_and_the_grid_lists_every_value():
    s = spec(GRID, "grid", trials=None)
    assert optuna_space(s.space)["loss.family"] == CategoricalDistribution(["bce", "lsgan", "wgan_gp"])
    assert grid_values(s.space) == {"loss.family": ["bce", "lsgan", "wgan_gp"],
                              "model.upsampler": ["pixel_shuffle", "resize_conv"]}
    with pytest.raises(ValueError, match="loss.beta"):
        grid_values(spec().space)


@pytest.mark.parametrize("algorithm, space, extra, cls", [
    ("tpe", SPACE, {}, TPESampler),
    ("motpe", SPACE, MULTI, TPESampler),
    ("random", SPACE, {}, RandomSampler),
    ("grid", GRID, {"trials": None}, GridSampler),
    ("nsga2", SPACE, MULTI, NSGAIISampler),
])
def test_searcher_builds_its_sampler(algorithm, space, extra, cls):
    s = spec(space, algorithm, **extra)
    assert isinstance(s.searcher.sampler(s.space), cls)


@pytest.mark.parametrize("algorithm, extra", [("tpe", {}), ("random", {}), ("nsga2", MULTI), ("motpe", MULTI)])
def test_every_sampler_survives_tunes_pickling(algorithm, extra):
    """Tune pickles its searcher into tuner.pkl (and restores it on --resume); Optuna 5.1's NSGA-II
    holds a thread lock that pickle refuses. A pickled-and-loaded sampler samples as the original."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = spec(SPACE, algorithm, **extra)
    clone = cloudpickle.loads(cloudpickle.dumps(s.searcher.sampler(s.space)))
    assert _ask(s, 3) == _ask(s, 3, sampler=clone)


def _ask(s, n, sampler=None):
    """Sample n configurations the way OptunaSearch does: ask with fixed distributions, tell a value."""
    directions = ["maximize"] * len(s.objective.metrics)
    study = optuna.create_study(sampler=sampler or s.searcher.sampler(s.space), directions=directions)
    dists = optuna_space(s.space)
    out = []
    for i in range(n):
        trial = study.ask(fixed_distributions=dists)
        out.append(trial.params)
        try:
            study.tell(trial, [float(i % 3)] * len(directions))
        except RuntimeError:
            # GridSampler calls study.stop() once the grid is done, which raises outside
            # study.optimize; the trial is stored all the same (Ray's OptunaSearch logs it)
            assert isinstance(study.sampler, GridSampler) and i == n - 1
    return out


@pytest.mark.parametrize("algorithm, extra", [("tpe", {}), ("random", {}), ("nsga2", MULTI), ("motpe", MULTI)])
def test_sampled_values_stay_in_bounds_and_give_valid_configs(algorithm, extra):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = spec(SPACE, algorithm, **extra)
    for params in _ask(s, 6):  # past n_startup_trials, so TPE's model samples too
        assert 1e-4 <= params["loss.beta"] <= 1e-1
        assert params["model.g_blocks"] in (2, 4, 6, 8)
        assert 4 <= params["schedule.batch_size"] <= 64
        cfg = trial_config(s, params)
        assert cfg.loss.family == params["loss.family"] and cfg.model.g_blocks == params["model.g_blocks"]


def test_same_seed_same_samples():
    assert _ask(spec(), 5) == _ask(spec(), 5)


def test_grid_sampler_covers_the_grid():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = spec(GRID, "grid", trials=None)
    seen = {tuple(sorted(p.items())) for p in _ask(s, s.trials)}
    assert len(seen) == 6

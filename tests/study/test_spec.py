"""The study spec schema: round trips, one-line errors naming the field, trial configs, shipped specs."""

from pathlib import Path

import pytest

from study.plan import plan
from study.spec import (
    StudySpecError,
    from_dict,
    load_spec,
    read_yaml,
    spec_hash,
    trial_config,
    with_base_overrides,
)
from tests.study.specs import spec_error
from trainables.config import ConfigError, TrialConfig
from trainables.yamlio import parse_value

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(REPO.glob("search_spaces/*.yaml"))

EXAMPLE = """\
# python -m study.run search_spaces/example.yaml
name: loss-family
description: Which adversarial loss trains most stably, and at which beta?
base:
  seed: 7
  schedule:
    pretrain_epochs: 1
    gan_epochs: 2
  data.patch_size: 32
  model.d_norm: layer
space:
  loss.family: {type: categorical, values: [bce, lsgan, wgan_gp]}
  loss.beta: {type: loguniform, low: 1e-4, high: 1e-1}
  model.g_blocks: {type: int, low: 2, high: 8, step: 2}
  optim.beta1_g: {type: uniform, low: 0.5, high: 0.9}
searcher: {algorithm: tpe, seed: 1, n_startup_trials: 3}
scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
objective: {metric: val_psnr, mode: max}
trials: 6
repeats: 2
max_concurrent: 2
resources: {workers: 1, cpus_per_worker: 1, gpus_per_worker: 0}
storage: null
tracking_uri: null
"""


@pytest.fixture
def example(tmp_path):
    path = tmp_path / "example.yaml"
    path.write_text(EXAMPLE)
    return path


def raw_example(tmp_path) -> dict:
    path = tmp_path / "raw.yaml"
    path.write_text(EXAMPLE)
    return read_yaml(path)


def grid_raw() -> dict:
    return {
        "name": "grid",
        "base": {"model.d_norm": "layer"},
        "space": {
            "loss.family": {"type": "grid", "values": ["bce", "lsgan", "wgan_gp"]},
            "model.upsampler": {"type": "categorical", "values": ["pixel_shuffle", "resize_conv"]},
        },
        "searcher": {"algorithm": "grid"},
    }


# ----------------------------------------------------------------------------- valid specs


def test_example_loads_with_resolved_fields(example):
    spec = load_spec(example)
    assert spec.name == "loss-family"
    assert spec.base == {"seed": 7, "schedule.pretrain_epochs": 1, "schedule.gan_epochs": 2, "data.patch_size": 32,
                         "model.d_norm": "layer", "eval.benchmarks": ["Set5", "Set14"]}  # the last from the laptop profile
    assert list(spec.space) == ["loss.family", "loss.beta", "model.g_blocks", "optim.beta1_g"]
    beta = spec.space["loss.beta"]
    assert (beta.type, beta.low, beta.high) == ("loguniform", pytest.approx(1e-4), pytest.approx(0.1))
    assert spec.space["model.g_blocks"].step == 2
    assert spec.scheduler.max_t == 3  # pretrain 1 + gan 2, from base
    assert spec.objective.metric == "val_psnr" and spec.objective.mode == "max" and not spec.objective.multi
    assert spec.total_trials == 12


def test_round_trip_through_yaml_keeps_spec_and_hash(example, tmp_path):
    spec = load_spec(example)
    again_path = tmp_path / "again.yaml"
    again_path.write_text(spec.dump_yaml())
    again = load_spec(again_path)
    assert again == spec
    assert again.to_dict() == spec.to_dict()
    assert spec_hash(again) == spec_hash(spec)
    assert from_dict(spec.to_dict()) == spec


def test_hash_is_12_hex_and_changes_with_the_spec(example):
    spec = load_spec(example)
    h = spec_hash(spec)
    assert len(h) == 12 and int(h, 16) >= 0
    assert spec_hash(load_spec(example, {"trials": 5})) != h


def test_defaults_for_a_minimal_spec():
    spec = from_dict({"name": "min", "trials": 1, "space": {"loss.beta": {"type": "uniform", "low": 0, "high": 1}}})
    assert spec.base == {}
    assert spec.searcher.algorithm == "tpe" and spec.searcher.n_startup_trials == 4
    assert spec.scheduler.type == "none" and spec.scheduler.max_t is None
    assert spec.objective.metrics == ("val_psnr",) and spec.objective.modes == ("max",)
    assert spec.repeats == 1 and spec.max_concurrent is None
    assert (spec.resources.workers, spec.resources.cpus_per_worker, spec.resources.gpus_per_worker) == (1, 1.0, 0.0)
    assert spec.storage is None and spec.tracking_uri is None


def test_asha_max_t_defaults_to_the_longest_trial_in_the_space():
    raw = {"name": "t", "trials": 2, "base": {"schedule.pretrain_epochs": 2},
           "space": {"schedule.gan_epochs": {"type": "int", "low": 1, "high": 5}},
           "scheduler": {"type": "asha"}}
    assert from_dict(raw).scheduler.max_t == 7
    raw["scheduler"]["max_t"] = 4
    assert from_dict(raw).scheduler.max_t == 4


def test_grid_size_and_null_trials_mean_the_whole_grid():
    spec = from_dict(grid_raw())
    assert spec.trials == 6
    spec = from_dict({**grid_raw(), "trials": 4, "repeats": 3})
    assert spec.trials == 4 and spec.total_trials == 12


def test_multi_objective_with_nsga2_and_motpe():
    for algo in ("nsga2", "motpe", "random"):
        spec = from_dict({"name": "mo", "trials": 4, "searcher": {"algorithm": algo},
                          "objective": {"metrics": ["val_psnr", "val_hf"], "modes": ["max", "max"]},
                          "space": {"loss.beta": {"type": "loguniform", "low": 1e-4, "high": 1e-1}}})
        assert spec.objective.multi and spec.objective.metrics == ("val_psnr", "val_hf")
        assert spec.to_dict()["objective"] == {"metrics": ["val_psnr", "val_hf"], "modes": ["max", "max"]}


def test_values_fine_only_together_are_accepted():
    # pixel_weight 0 alone (vgg 0 by default) is invalid, but vgg_weight is never 0 here
    spec = from_dict({"name": "w", "trials": 2, "space": {
        "loss.pixel_weight": {"type": "categorical", "values": [0, 1]},
        "loss.vgg_weight": {"type": "categorical", "values": [1, 2]}}})
    assert set(spec.space) == {"loss.pixel_weight", "loss.vgg_weight"}


def test_yaml_reads_exponents_without_a_dot_as_floats():
    assert parse_value("1e-4") == pytest.approx(1e-4)
    assert parse_value("4") == 4 and parse_value("null") is None and parse_value("bce") == "bce"


def test_plan_describes_the_study(example):
    lines = plan(load_spec(example))
    text = "\n".join(lines)
    assert lines[0].startswith("study: loss-family (spec ")
    assert "searcher: tpe (seed 1, 3 random startup trials" in text
    assert "scheduler: asha on epoch (grace period 1, reduction factor 2, max_t 3)" in text
    assert "objective: maximise val_psnr" in text
    assert "trials: 6 configuration(s) x 2 repeat(s) = 12 trials" in text
    assert "concurrency: 2" in text
    assert "storage: ./study_results (default)" in text
    assert any("loss.beta" in line and "loguniform [0.0001, 0.1]" in line for line in lines)
    assert any("model.g_blocks" in line and "int [2, 8] step 2" in line for line in lines)


# ----------------------------------------------------------------------------- trial configs


def test_trial_config_applies_base_sampled_and_seed(example):
    spec = load_spec(example)
    sampled = {"loss.family": "bce", "loss.beta": 0.02, "model.g_blocks": 6, "optim.beta1_g": 0.5}
    cfg = trial_config(spec, sampled, repeat_index=1)
    assert isinstance(cfg, TrialConfig)
    assert cfg.seed == 8  # base seed 7 + repeat 1
    assert cfg.schedule.gan_epochs == 2 and cfg.data.patch_size == 32  # base
    assert cfg.loss.family == "bce" and cfg.loss.beta == pytest.approx(0.02) and cfg.model.g_blocks == 6
    assert cfg.model.upsampler == "pixel_shuffle"  # untouched default
    assert trial_config(spec, {}, 0).seed == 7


def test_trial_config_rejects_keys_outside_the_space_and_bad_repeats(example):
    spec = load_spec(example)
    with pytest.raises(ValueError, match="model.upsampler"):
        trial_config(spec, {"model.upsampler": "resize_conv"})
    with pytest.raises(ValueError, match="repeat_index 2"):
        trial_config(spec, {}, repeat_index=2)
    with pytest.raises(ConfigError, match="loss.family"):
        trial_config(spec, {"loss.family": "hinge"})


# ----------------------------------------------------------------------------- overrides


def test_load_spec_overrides_spec_fields_and_base_keys(example):
    spec = load_spec(example, {"trials": 3, "name": "other", "searcher.seed": 5, "base.schedule.gan_epochs": 4})
    assert spec.trials == 3 and spec.name == "other" and spec.searcher.seed == 5
    assert spec.base["schedule.gan_epochs"] == 4
    assert spec.scheduler.max_t == 5  # re-resolved from the new base


@pytest.mark.parametrize("overrides, message", [
    ({"trails": 3}, "trails: unknown key; did you mean trials?"),
    ({"space.loss.beta.low": 1e-3}, "space.loss.beta.low: the search space cannot be overridden"),
    ({"base.loss.betta": 1}, "base.loss.betta: unknown key"),
    ({"trials": 0}, "trials: got 0, expected >= 1"),
    ({"name.x": 1}, "name: is a value, not a section"),
])
def test_bad_load_overrides(example, overrides, message):
    with pytest.raises(StudySpecError) as info:
        load_spec(example, overrides)
    assert str(info.value).startswith(message)


def test_with_base_overrides_revalidates(example):
    spec = load_spec(example)
    longer = with_base_overrides(spec, {"schedule.gan_epochs": 5, "model.upsampler": "resize_conv"})
    assert longer.base["schedule.gan_epochs"] == 5 and longer.base["model.upsampler"] == "resize_conv"
    assert longer.scheduler.max_t == 6  # max_t was not given, so it follows the base
    assert spec.base["schedule.gan_epochs"] == 2  # the original is untouched
    with pytest.raises(StudySpecError, match=r"^base\.loss\.betta: unknown key"):
        with_base_overrides(spec, {"loss.betta": 1})
    with pytest.raises(StudySpecError, match=r"^space\.loss\.family: also fixed in base"):
        with_base_overrides(spec, {"loss.family": "bce"})
    with pytest.raises(StudySpecError, match=r"^base\.data\.patch_size: got 30, expected a multiple of 16"):
        with_base_overrides(spec, {"scale": 4, "data.patch_size": 30})


# ----------------------------------------------------------------------------- errors


def _set(path: str, value):
    """A mutation of the example's raw tree: set `a/b/c` (slash-separated, keys may hold dots)."""
    def apply(raw):
        *parents, last = path.split("/")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
        return raw
    return apply


def _drop(path: str):
    def apply(raw):
        *parents, last = path.split("/")
        node = raw
        for part in parents:
            node = node[part]
        del node[last]
        return raw
    return apply


def _all(*mutations):
    def apply(raw):
        for mutate in mutations:
            raw = mutate(raw)
        return raw
    return apply


CAT = {"type": "categorical", "values": ["bce", "lsgan"]}

ERRORS = [
    # top level
    (_set("trails", 4), "trails: unknown key; did you mean trials?"),
    (_drop("name"), "name: missing"),
    (_set("name", "my study"), "name: got 'my study', expected letters, digits, - and _ only"),
    (_set("name", 3), "name: got 3 (int), expected str"),
    (_set("description", ["a"]), "description: got ['a'] (list), expected str"),
    # base
    (_set("base", [1]), "base: got [1], expected a mapping"),
    (_set("base/loss", {"betta": 1}), "base.loss.betta: unknown key"),
    (_set("base/loss.beta", -1), "base.loss.beta: got -1.0, expected >= 0"),
    (_set("base/schedule", {"gan_epochs": "two"}), "base.schedule.gan_epochs: got 'two' (str), expected int"),
    (_set("base", {"data": {"patch_size": 32}, "data.patch_size": 32}), "base.data.patch_size: set twice"),
    # space keys
    (_set("space", [1]), "space: got [1], expected a mapping"),
    (_drop("space"), "space: missing or empty; name at least one trial-config key"),
    (_set("space", {}), "space: missing or empty"),
    (_set("space/loss.betta", CAT), "space.loss.betta: not a trial-config key; did you mean loss.beta"),
    (_set("space/loss", CAT), "space.loss: a section; key the space by dotted fields such as loss.family"),
    (_set("space/nonsense", CAT), "space.nonsense: not a trial-config key (sections: data, eval, loss, model"),
    (_set("space/seed", {"type": "int", "low": 0, "high": 3}), "space.seed: seeds come from base seed + repeat"),
    (_set("space/schedule.gan_epochs", {"type": "int", "low": 1, "high": 3}),
     "space.schedule.gan_epochs: also fixed in base"),
    # param shapes
    (_set("space/loss.beta", 0.01), "space.loss.beta: got 0.01, expected a mapping with a type"),
    (_set("space/loss.beta/type", "normal"), "space.loss.beta.type: got 'normal', expected one of categorical"),
    (_set("space/loss.beta/lo", 1), "space.loss.beta.lo: unknown key; did you mean low?"),
    (_drop("space/loss.beta/high"), "space.loss.beta.high: missing; a loguniform param needs low and high"),
    (_set("space/loss.beta/low", -1), "space.loss.beta.low: got -1, expected > 0 for a log-uniform range"),
    (_set("space/loss.beta/low", "small"), "space.loss.beta.low: got 'small' (str), expected float"),
    (_set("space/loss.beta/high", 1e-5), "space.loss.beta.high: got 1e-05, expected > low (0.0001)"),
    (_set("space/loss.family/values", []), "space.loss.family.values: got [], expected a non-empty list"),
    (_set("space/loss.family/values", ["bce", [1, 2]]), "space.loss.family.values[1]: got [1, 2], expected a scalar"),
    (_set("space/loss.family/values", ["bce", "bce"]), "space.loss.family.values[1]: bce appears twice"),
    (_set("space/model.g_blocks/high", 7), "space.model.g_blocks.high: got 7, expected low plus a multiple of step 2"),
    (_set("space/model.g_blocks/low", 1.5), "space.model.g_blocks.low: got 1.5 (float), expected int"),
    (_set("space/model.g_blocks/step", 0), "space.model.g_blocks.step: got 0, expected >= 1"),
    (_set("space/model.g_blocks/log", True), "space.model.g_blocks.step: got 2, a log int range needs step 1"),
    # param values against the trial config
    (_set("space/loss.family/values", ["bce", "hinge"]),
     "space.loss.family: value hinge gives an invalid trial config: loss.family: got 'hinge'"),
    (_set("space/schedule.batch_size", {"type": "uniform", "low": 4, "high": 32}),
     "space.schedule.batch_size.type: a uniform range gives floats, but schedule.batch_size takes int"),
    (_set("space/model.upsampler", {"type": "int", "low": 1, "high": 3}),
     "space.model.upsampler.type: an int range gives ints, but model.upsampler takes"),
    (_set("space/optim.beta1_g/high", 1.0),
     "space.optim.beta1_g.high: value 1.0 gives an invalid trial config: optim.beta1_g: got 1.0"),
    (_set("space/optim.lr_g", {"type": "loguniform", "low": 1e-5, "high": 2}),
     "space.optim.lr_g.high: value 2.0 gives an invalid trial config"),
    (_set("space/scale", {"type": "int", "low": 2, "high": 4}),
     "space.scale: value 3 gives an invalid trial config: scale: got 3"),
    # searcher
    (_set("searcher/algorithm", "cmaes"), "searcher.algorithm: got 'cmaes', expected one of 'tpe' | 'random' | 'grid'"),
    (_set("searcher/sed", 1), "searcher.sed: unknown key; did you mean seed?"),
    (_set("searcher/seed", "x"), "searcher.seed: got 'x' (str), expected int"),
    (_set("searcher/seed", -1), "searcher.seed: got -1, expected >= 0"),
    (_set("searcher/n_startup_trials", -2), "searcher.n_startup_trials: got -2, expected >= 0"),
    (_set("searcher", "tpe"), "searcher: got 'tpe', expected a mapping with keys algorithm, seed, n_startup_trials"),
    (_set("searcher/algorithm", "grid"), "space.loss.beta.type: a loguniform range cannot be enumerated"),
    (_set("space/loss.family/type", "grid"), "space.loss.family.type: grid params need searcher.algorithm: grid"),
    (_set("searcher/algorithm", "nsga2"), "searcher.algorithm: nsga2 is multi-objective"),
    # scheduler
    (_set("scheduler/type", "hyperband"), "scheduler.type: got 'hyperband', expected one of 'asha' | 'none'"),
    (_set("scheduler/grace_period", 10), "scheduler.grace_period: got 10, expected at most max_t (3) epochs"),
    (_set("scheduler/reduction_factor", 1), "scheduler.reduction_factor: got 1, expected > 1"),
    (_set("scheduler/max_t", 0), "scheduler.max_t: got 0, expected >= 1 epoch or null"),
    (_set("scheduler/grace_period", 0), "scheduler.grace_period: got 0, expected >= 1 epoch"),
    (_set("objective", {"metrics": ["val_psnr", "val_hf"], "modes": ["max", "max"]}),
     "scheduler.type: asha stops trials on one metric; a multi-objective study needs scheduler.type: none"),
    # objective
    (_set("objective/metric", "psnr"), "objective.metric: got 'psnr', not a reported metric; did you mean val_psnr?"),
    (_set("objective/mode", "maximize"), "objective.mode: got 'maximize', expected one of 'max' | 'min'"),
    (_drop("objective/mode"), "objective.mode: missing"),
    (_set("objective/metrics", ["val_psnr"]), "objective: give either metric and mode, or metrics and modes"),
    (_set("objective", {"metrics": ["val_psnr", "val_hf"], "modes": ["max"]}),
     "objective.modes: got 1 modes for 2 metrics"),
    (_set("objective", {"metrics": ["val_psnr", "val_psnr"], "modes": ["max", "max"]}),
     "objective.metrics[1]: val_psnr appears twice"),
    (_set("objective", {"metrics": ["val_psnr", "val_hf"], "modes": ["max", "up"]}),
     "objective.modes[1]: got 'up', expected one of 'max' | 'min'"),
    (_set("objective/goal", "x"), "objective.goal: unknown key"),
    # how much runs, where
    (_drop("trials"), "trials: missing; give the number of configurations"),
    (_set("trials", 0), "trials: got 0, expected >= 1"),
    (_set("trials", True), "trials: got True, expected int or null"),
    (_set("repeats", 0), "repeats: got 0, expected >= 1"),
    (_set("max_concurrent", 0), "max_concurrent: got 0, expected >= 1 or null"),
    (_set("resources/workers", 0), "resources.workers: got 0, expected >= 1"),
    (_set("resources/cpus_per_worker", 0), "resources.cpus_per_worker: got 0, expected > 0"),
    (_set("resources/gpus_per_worker", -1), "resources.gpus_per_worker: got -1, expected >= 0"),
    (_set("resources/gpu", 1), "resources.gpu: unknown key"),
    (_set("base/runtime.device", "cuda"), "resources.gpus_per_worker: got 0, but runtime.device can be cuda"),
    (_set("storage", " "), "storage: empty"),
    (_set("tracking_uri", 5), "tracking_uri: got 5, expected str or null"),
]
SCALES = {"type": "categorical", "values": [2, 4]}
ERRORS += [
    # values fine alone that clash with base or with each other
    (_all(_set("base/schedule.patches_per_epoch", 16),
          _set("space/schedule.batch_size", {"type": "categorical", "values": [8, 32]})),
     "space.schedule.batch_size: value 32 gives an invalid trial config: schedule.patches_per_epoch: got 16"),
    (_all(_drop("base/data.patch_size"), _set("space/scale", SCALES),
          _set("space/data.patch_size", {"type": "categorical", "values": [32, 40]})),
     "space.data.patch_size: value 40 gives an invalid trial config: data.patch_size: got 40, expected a multiple"),
    (_all(_set("space/loss.pixel_weight", {"type": "categorical", "values": [0, 1]}),
          _set("space/loss.vgg_weight", {"type": "categorical", "values": [0, 1]})),
     "space.loss.pixel_weight: value 0 gives an invalid trial config"),
]


@pytest.mark.parametrize("mutate, message", ERRORS, ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(ERRORS)])
def test_errors_are_one_line_and_name_the_field(mutate, message, tmp_path):
    text = spec_error(mutate(raw_example(tmp_path)))
    assert text.startswith(message), text


def test_one_configuration_repeated_is_a_one_point_grid():
    spec = from_dict({"name": "seeds", "repeats": 5, "searcher": {"algorithm": "grid"},
                      "space": {"model.upsampler": {"type": "grid", "values": ["resize_conv"]}}})
    assert spec.trials == 1 and spec.total_trials == 5
    assert [trial_config(spec, {"model.upsampler": "resize_conv"}, i).seed for i in range(5)] == [0, 1, 2, 3, 4]


def test_grid_trials_cannot_exceed_the_grid():
    with pytest.raises(StudySpecError, match=r"^trials: got 10, but the grid has 6 points"):
        from_dict({**grid_raw(), "trials": 10})


def test_file_errors(tmp_path):
    with pytest.raises(StudySpecError, match="no such study spec file"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nspace:\n  a: [1, 2\n")
    with pytest.raises(StudySpecError, match=r"bad.yaml: not valid YAML \(line \d+\)"):
        load_spec(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(StudySpecError, match="expected a mapping at the top level of the study spec file"):
        load_spec(listy)


# ----------------------------------------------------------------------------- shipped specs


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_spec_loads_and_opens_with_its_command(path):
    spec = load_spec(path)
    assert spec.total_trials >= 1
    assert plan(spec)
    lines = path.read_text().splitlines()
    header = []
    for line in lines:  # the opening comment block
        if not line.startswith("#"):
            break
        header.append(line)
    command = f"python -m study.run search_spaces/{path.name}"
    assert any(command in line for line in header), f"{path.name} must open with a comment giving `{command}`"


def test_search_spaces_has_the_first_studies():
    names = {p.name for p in SHIPPED}
    assert {"smoke.yaml", "loss_family.yaml"} <= names, f"search_spaces/ holds {sorted(names)}"


# ----------------------------------------------------------------------------- claims, profiles, selection


def claim_raw(**claim) -> dict:
    raw = grid_raw()
    raw["claims"] = [{"name": "lsgan_best", "metric": "gan_psnr_drop", "better": "lower",
                      "compare": {"key": "loss.family", "values": ["lsgan", "bce", "wgan_gp"]}, **claim}]
    return raw


def test_claims_parse_in_their_three_forms():
    from study.spec import from_dict

    spec = from_dict(claim_raw())
    (c,) = spec.claims
    assert c.key == "loss.family" and [f for _, f in c.groups] == [{"loss.family": v} for v in
                                                                   ("lsgan", "bce", "wgan_gp")]
    two = from_dict(claim_raw(compare={"groups": {"ls": {"loss.family": "lsgan"}, "bce": {"loss.family": "bce"}}},
                              where={"model.upsampler": "resize_conv"}))
    assert [label for label, _ in two.claims[0].groups] == ["ls", "bce"]
    assert two.claims[0].where == {"model.upsampler": "resize_conv"}
    base = from_dict(claim_raw(metric="test_set14_hf", better="closer", target=1, compare={"baseline": "bicubic"}))
    assert base.claims[0].baseline == "bicubic" and base.claims[0].target == 1.0
    assert from_dict(spec.to_dict()).claims == spec.claims  # round trip through the logged spec


@pytest.mark.parametrize("change, where", [
    ({"metrc": "val_psnr"}, "claims[0].metrc: unknown key"),
    ({"metric": "val_psnr_x"}, "claims[0].metric: got 'val_psnr_x', not a reported metric; did you mean val_psnr?"),
    ({"better": "up"}, "claims[0].better: got 'up'"),
    ({"better": "closer"}, "claims[0].target:"),
    ({"better": "fewer"}, "claims[0].better: fewer"),
    ({"compare": {"key": "loss.beta", "values": [0.0, 0.1]}}, "claims[0].compare.key: loss.beta is not a searched key"),
    ({"compare": {"key": "loss.family", "values": ["lsgan", "hinge"]}}, "claims[0].compare.loss.family: got 'hinge'"),
    ({"compare": {"key": "loss.family", "values": ["lsgan"]}}, "claims[0].compare.values:"),
    ({"compare": {"baseline": "bicubic"}, "metric": "gan_psnr_drop"}, "claims[0].compare.baseline:"),
    ({"where": {"optim.lr_g": 0.1}}, "claims[0].where: optim.lr_g is not a searched key"),
])
def test_bad_claims_fail_in_one_line(change, where):
    text = spec_error(claim_raw(**change))
    assert text.startswith(where), text


def test_profiles_override_base_not_searched_keys_or_set(tmp_path):
    path = tmp_path / "s.yaml"
    raw = claim_raw()
    raw["base"] = {"model.d_norm": "layer", "model.g_channels": 16}
    raw["space"]["schedule.pretrain_epochs"] = {"type": "grid", "values": [0, 1]}
    import yaml

    path.write_text(yaml.safe_dump(raw))
    laptop = load_spec(path)
    assert laptop.profile == "laptop" and laptop.base["model.g_channels"] == 16
    paper = load_spec(path, profile="paper")
    assert paper.profile == "paper"
    assert paper.base["model.g_channels"] == 64 and paper.base["model.g_blocks"] == 16
    assert paper.base["schedule.batch_size"] == 64 and paper.base["runtime.precision"] == "bf16"
    assert paper.base["schedule.patches_per_epoch"] >= 9000 and paper.base["model.d_dense"] == 1024
    assert "schedule.pretrain_epochs" not in paper.base  # searched: left to the space
    assert paper.resources.gpus_per_worker == 1
    assert any("left to the search space: schedule.pretrain_epochs" in line for line in plan(paper))
    again = with_base_overrides(paper, {"model.g_channels": 8})
    assert again.base["model.g_channels"] == 8 and again.profile == "paper"  # --set wins


def test_bad_profiles_fail_in_one_line(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nbase: {model.d_norm: layer}\nspace: {loss.family: {type: grid, values: [bce]}}\n"
                    "searcher: {algorithm: grid}\n")
    with pytest.raises(StudySpecError, match=r"^profile: got 'papr', expected one of .*laptop.*paper"):
        load_spec(spec, profile="papr")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "odd.yaml").write_text("base: {model.g_chanels: 8}\n")
    with pytest.raises(StudySpecError, match=r"^profile odd.base.model.g_chanels"):
        load_spec(spec, profile="odd")
    (tmp_path / "profiles" / "odd.yaml").write_text("bases: {}\n")
    with pytest.raises(StudySpecError, match=r"^profile odd.bases: unknown key"):
        load_spec(spec, profile="odd")


def test_shipped_profiles_load_every_shipped_spec():
    for path in SHIPPED:
        assert load_spec(path, profile="paper").base["model.g_blocks"] == 16, path.name


def test_paper_questions_declare_their_claims():
    claims = {p.stem: [c.metric for c in load_spec(p).claims] for p in SHIPPED}
    assert "gan_psnr_drop" in claims["loss_family"] and "diverged" in claims["loss_family"]
    for name in ("dg_ratio", "pretraining", "upsampler", "beta", "video"):
        assert claims[name], name
    assert load_spec(REPO / "search_spaces" / "loss_family.yaml").base["model.d_norm"] == "layer"


def test_selection_values_are_the_best_epoch_so_far():
    from study.spec import Objective, selection_metric, selection_values

    objective = Objective(("val_psnr", "val_tc"), ("max", "min"))
    best: dict = {}
    seen = [selection_values(best, m, objective) for m in (
        {"val_psnr": 30.0, "val_tc": 2.0}, {"val_psnr": 31.0, "val_tc": 3.0}, {"val_psnr": 29.0, "val_tc": 1.0},
        {"val_psnr": float("nan")})]  # a diverged epoch keeps the best so far
    assert [s["best_val_psnr"] for s in seen] == [30.0, 31.0, 31.0, 31.0]
    assert [s["best_val_tc"] for s in seen] == [2.0, 2.0, 1.0, 1.0]
    assert selection_metric("best_val_psnr") == "best_val_psnr"
    first = selection_values({}, {"val_psnr": float("nan")}, Objective())
    assert first["best_val_psnr"] != first["best_val_psnr"]  # NaN: never validated


def test_dry_run_shows_the_profile(capsys):
    from study import run

    assert run.main([str(REPO / "search_spaces" / "loss_family.yaml"), "--profile", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "profile: paper" in out and "model.g_blocks=16" in out and "gpus_per_worker: 1" in out
    assert "Tune sees best_val_psnr" in out and "lsgan_most_stable" in out
    assert run.main([str(REPO / "search_spaces" / "loss_family.yaml"), "--profile", "nope", "--dry-run"]) == 2

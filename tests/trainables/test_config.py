"""The trial config schema: defaults, strict loading, dotted overrides, impossible values."""

import pytest

from trainables.config import ConfigError, TrialConfig, load_config
from trainables.yamlio import apply_overrides, parse_set_args


def test_defaults_are_valid_and_flat_keys_cover_every_section():
    cfg = load_config()
    flat = cfg.flat()
    assert flat["scale"] == 2
    assert flat["loss.family"] == "lsgan"
    assert flat["schedule.d_steps_per_g"] == 2
    assert {k.split(".")[0] for k in flat} == {"seed", "scale", "data", "model", "loss", "optim", "schedule", "runtime", "eval"}


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scale: 4\nloss:\n  family: bce\n  beta: 0.001\n")
    cfg = load_config(path, parse_set_args(["loss.beta=0.01", "model.upsampler=resize_conv", "optim.grad_clip=null"]))
    assert cfg.scale == 4
    assert cfg.loss.family == "bce"
    assert cfg.loss.beta == pytest.approx(0.01)
    assert cfg.model.upsampler == "resize_conv"
    assert cfg.optim.grad_clip is None


def test_int_is_accepted_for_float_and_integral_float_for_int():
    cfg = load_config(overrides={"loss.beta": 1, "schedule.batch_size": 8.0})
    assert isinstance(cfg.loss.beta, float) and cfg.loss.beta == 1.0
    assert cfg.schedule.batch_size == 8 and isinstance(cfg.schedule.batch_size, int)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"loss.betaa": 0.1}, "loss.betaa: unknown key"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"loss.beta": "big"}, "loss.beta: got 'big'"),
        ({"schedule.batch_size": 1.5}, "schedule.batch_size"),
        ({"data.augment": "yes"}, "data.augment"),
        ({"optim.lr_g": -1e-4}, "optim.lr_g"),
        ({"scale": 3}, "scale: got 3, expected one of 2 | 4"),
        ({"data.patch_size": 66, "scale": 4}, "data.patch_size: got 66, expected a multiple of 16"),
        ({"loss.family": "hinge"}, "loss.family: got 'hinge'"),
        ({"model.upsampler": "deconv"}, "model.upsampler"),
        ({"data.source": "folder"}, "data.path"),
        ({"schedule.pretrain_epochs": 0, "schedule.gan_epochs": 0}, "nothing to train"),
        ({"loss.pixel_weight": 0.0}, "content loss"),
        ({"loss.beta.x": 1}, "loss.beta: got {'x': 1}"),
    ],
)
def test_bad_values_fail_naming_the_field(overrides, field):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=overrides)
    message = str(err.value)
    assert field in message
    assert "\n" not in message


def test_unknown_key_lists_what_is_accepted(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  widht: 3\n")
    with pytest.raises(ConfigError, match=r"model.widht: unknown key; model accepts g_channels, g_blocks"):
        load_config(path)


def test_bad_yaml_and_missing_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("loss: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


def test_apply_overrides_does_not_mutate_and_parse_set_rejects_garbage():
    tree = {"loss": {"beta": 0.1}}
    out = apply_overrides(tree, {"loss.beta": 0.2, "model.g_blocks": 2})
    assert tree == {"loss": {"beta": 0.1}}
    assert out == {"loss": {"beta": 0.2}, "model": {"g_blocks": 2}}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_set_args(["loss.beta"])


def test_round_trip_through_dict():
    cfg = load_config(overrides={"loss.family": "wgan_gp", "model.d_norm": "layer", "seed": 7,
                                 "eval.benchmarks": ["Set5", "/data/mine"]})
    again = load_config(base=cfg.to_dict())
    assert again == cfg
    assert isinstance(again, TrialConfig)


def test_wgan_gp_refuses_batch_norm_in_d():
    with pytest.raises(ConfigError, match=r"^model\.d_norm: batch with loss\.family wgan_gp.*use model\.d_norm layer or none$"):
        load_config(overrides={"loss.family": "wgan_gp"})
    for norm in ("layer", "none"):
        assert load_config(overrides={"loss.family": "wgan_gp", "model.d_norm": norm}).model.d_norm == norm
    with pytest.raises(ConfigError, match="model.d_norm: got 'instance', expected one of 'batch' | 'layer' | 'none'"):
        load_config(overrides={"model.d_norm": "instance"})


def test_pretrain_betas_and_eval_section():
    cfg = load_config(overrides=parse_set_args(["optim.beta1_pretrain=0.5", "eval.benchmarks=[Set5]", "eval.max_pixels=null"]))
    assert (cfg.optim.beta1_pretrain, cfg.optim.beta2_pretrain) == (0.5, 0.999)
    assert cfg.eval.benchmarks == ["Set5"] and cfg.eval.max_pixels is None
    assert load_config().eval.benchmarks == ["Set5", "Set14", "BSD100", "Urban100"]
    with pytest.raises(ConfigError, match="optim.beta2_pretrain: got 1.0"):
        load_config(overrides={"optim.beta2_pretrain": 1.0})
    with pytest.raises(ConfigError, match=r"eval.benchmarks\[1\]: got 5"):
        load_config(overrides={"eval.benchmarks": ["Set5", 5]})
    with pytest.raises(ConfigError, match="eval.benchmarks: got 'Set5', expected a list of str"):
        load_config(overrides={"eval.benchmarks": "Set5"})
    with pytest.raises(ConfigError, match="eval.max_pixels: got 0"):
        load_config(overrides={"eval.max_pixels": 0})

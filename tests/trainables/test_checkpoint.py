"""Checkpoints hold tensors and plain values only (weights_only=True), restore every RNG exactly,
refuse an older pickled format with one line naming the fix, and that fix converts it."""

import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from trainables import checkpoint
from trainables.config import dump_yaml, load_config
from trainables.errors import UserError
from trainables.models import build_generator


@pytest.fixture
def cfg():
    return load_config(overrides={"model.g_channels": 8, "model.g_blocks": 1, "seed": 5})


def draws() -> tuple:
    return random.random(), float(np.random.rand()), float(np.random.randn()), torch.rand(2).tolist()


def test_state_loads_with_weights_only_and_restores_every_rng(tmp_path, cfg):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # leaves a cached Gaussian in numpy's state
    folder = checkpoint.save(tmp_path / "c", cfg, {"generator": build_generator(cfg).state_dict(), "epoch": 4,
                                                   "best_psnr": 31.5})
    expected = draws()
    state = torch.load(folder / checkpoint.STATE_FILE, weights_only=True)  # no code runs to read it
    assert state["format"] == checkpoint.FORMAT and state["epoch"] == 4
    loaded_cfg, loaded = checkpoint.load(folder)
    assert loaded_cfg == cfg
    checkpoint.set_rng_state(loaded["rng"])
    assert draws() == expected


def test_an_older_pickled_checkpoint_gets_one_line_naming_the_fix(tmp_path, cfg):
    folder = tmp_path / "old"
    folder.mkdir()
    weights = build_generator(cfg).state_dict()
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    old_rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    torch.save({"generator": weights, "epoch": 2, "rng": old_rng}, folder / "state.pt")
    (folder / "config.yaml").write_text(dump_yaml(cfg))
    expected = draws()

    with pytest.raises(UserError) as err:
        checkpoint.load(folder)
    message = str(err.value)
    assert "\n" not in message and "older format" in message
    assert f"python -m trainables.checkpoint --upgrade {folder}" in message

    done = subprocess.run([sys.executable, "-m", "trainables.checkpoint", "--upgrade", str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    _, state = checkpoint.load(folder)
    assert state["format"] == checkpoint.FORMAT and state["epoch"] == 2
    checkpoint.set_rng_state(state["rng"])
    assert draws() == expected  # the converted RNG state is the same state


def test_a_generator_folder_round_trips(tmp_path, cfg):
    torch.manual_seed(0)
    generator = build_generator(cfg).eval()
    checkpoint.save_generator(tmp_path / "g", cfg, generator.state_dict())
    cfg2, loaded = checkpoint.generator_from_folder(tmp_path / "g")
    assert cfg2 == cfg and not loaded.training
    lr = torch.rand(2, 3, 10, 10)
    with torch.no_grad():
        assert torch.equal(loaded(lr), generator(lr))
    with pytest.raises(UserError, match="not a generator folder"):
        checkpoint.generator_from_folder(tmp_path)


TEAR = """
import sys
from trainables import checkpoint
from trainables.config import load_config
cfg = load_config(overrides={"model.g_channels": 8, "model.g_blocks": 1})
import torch
for epoch in (1, 2):
    checkpoint.save(sys.argv[1] + f"/epoch_{epoch:04d}", cfg, {"generator": {"w": torch.ones(4096)}, "epoch": epoch})
    print("saved", epoch, flush=True)
"""


def test_a_checkpoint_torn_mid_write_never_replaces_a_complete_one(tmp_path):
    marker = tmp_path / "tear-once"
    marker.touch()
    env = {**os.environ, checkpoint.TEAR_ENV: f"2:{marker}"}
    done = subprocess.run([sys.executable, "-c", TEAR, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -9 and done.stdout.split() == ["saved", "1"]  # SIGKILLed while writing epoch 2
    assert not marker.exists()  # the fault fires once
    torn = tmp_path / "epoch_0002.tmp" / checkpoint.STATE_FILE
    assert torn.is_file() and not (tmp_path / "epoch_0002").exists()  # half a file, never renamed into place
    with pytest.raises(UserError, match="unreadable checkpoint"):
        checkpoint.load(torn.parent)
    assert checkpoint.load(tmp_path / "epoch_0001")[1]["epoch"] == 1  # the complete one is intact
    # a rerun (the restarted worker) writes epoch 2 whole over the torn temp folder
    done = subprocess.run([sys.executable, "-c", TEAR, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and checkpoint.load(tmp_path / "epoch_0002")[1]["epoch"] == 2
    assert not torn.parent.exists()


def test_a_hand_edited_checkpoint_config_reads_like_any_config(tmp_path, cfg):
    folder = checkpoint.save(tmp_path / "c", cfg, {"generator": build_generator(cfg).state_dict(), "epoch": 1})
    text = (folder / checkpoint.CONFIG_FILE).read_text()
    (folder / checkpoint.CONFIG_FILE).write_text(text.replace("lr_g: 0.0001", "lr_g: 1e-4"))
    assert "lr_g: 1e-4" in (folder / checkpoint.CONFIG_FILE).read_text()
    assert checkpoint.load(folder)[0].optim.lr_g == 1e-4  # a float, as in a config file (plain YAML: a string)

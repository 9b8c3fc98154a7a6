"""What the study-spec tests share: a population-based-training spec, and the check of a bad spec's error."""

from __future__ import annotations

import pytest
import yaml

from study.spec import StudySpecError, from_dict

PBT = """\
name: pbt
base:
  schedule.pretrain_epochs: 2
  schedule.gan_epochs: 4
space:
  optim.lr_g: {type: loguniform, low: 1.0e-5, high: 1.0e-3}
searcher: {algorithm: random, seed: 3}
scheduler:
  type: pbt
  perturbation_interval: 2
  quantile_fraction: 0.5
  resample_probability: 0.1
  mutations:
    optim.lr_g: {type: loguniform, low: 1.0e-5, high: 1.0e-3}
    optim.lr_d: [1.0e-5, 1.0e-4, 1.0e-3]
    schedule.d_steps_per_g: [1, 2, 3]
trials: 4
"""


def pbt_raw(pretrain_epochs: int = 2) -> dict:
    """A fresh copy of the PBT spec above, as read from YAML, with `pretrain_epochs` before its 4 GAN epochs:
    decisions every 2 epochs, the first one interval after pretraining."""
    raw = yaml.safe_load(PBT)
    raw["base"]["schedule.pretrain_epochs"] = pretrain_epochs
    return raw


def spec_error(raw: dict) -> str:
    """The message of the StudySpecError that `from_dict(raw)` raises, checked to be one line."""
    with pytest.raises(StudySpecError) as info:
        from_dict(raw)
    text = str(info.value)
    assert "\n" not in text
    return text

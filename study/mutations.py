"""Population-based training settings of a study spec: which trial-config keys PBT may change mid-run.

`scheduler: {type: pbt, perturbation_interval, burn_in, quantile_fraction,
resample_probability, mutations: {key: param or list}}`. At each decision (every
`perturbation_interval` epochs from `burn_in` on) the worst `quantile_fraction` of the
population copies the state of one of the best (exploit) and perturbs the mutated keys
(explore: a value times 0.8 or 1.2, a list's neighbour, or with `resample_probability` a
fresh draw). A trial then continues from the donor's checkpoint with its new config, so only
keys the trainer can take up mid-run may mutate: learning rates (applied to the restored
optimisers), loss weights and the D:G step ratio (read every step). Anything that changes a
model's shape, the data or the phases is refused, naming the keys that are allowed.

Kept apart from `study.spec` (which imports this module) and free of Ray, so that reports
can read a logged spec without Ray.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

from study.space import FIELD_TYPES, Param, StudySpecError, coerce, fail, parse_space, unknown

# trial-config keys the trainer takes up when a run resumes under a changed config: the
# learning rates are written into the restored optimisers at the start of every epoch
# (trainables.schedules.set_rates), the loss weights and the D:G ratio are read every step
MUTABLE = ("optim.lr_g", "optim.lr_d", "optim.lr_pretrain", "loss.beta", "loss.pixel_weight",
           "loss.gp_weight", "schedule.d_steps_per_g")
PBT_KEYS = ("perturbation_interval", "burn_in", "quantile_fraction", "resample_probability", "mutations")


@dataclass(frozen=True)
class PBTConfig:
    """Population-based training: when trials are compared, and what the losers may change."""

    mutations: dict[str, Param] = field(default_factory=dict)  # mutated key -> its distribution
    perturbation_interval: int = 1  # epochs between decisions
    burn_in: int | None = None  # first epoch with a decision; null: pretrain_epochs + perturbation_interval
    quantile_fraction: float = 0.25  # the bottom fraction exploits the top fraction (at most 0.5)
    resample_probability: float = 0.25  # chance of a fresh draw instead of a x0.8 / x1.2 step

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (flat inside `scheduler`); lists stay lists."""
        muts = {k: list(p.values) if p.type == "categorical" else p.to_dict() for k, p in self.mutations.items()}
        return {"perturbation_interval": self.perturbation_interval, "burn_in": self.burn_in,
                "quantile_fraction": self.quantile_fraction,
                "resample_probability": self.resample_probability, "mutations": muts}

    def describe(self) -> str:
        return (f"pbt on epoch (decisions every {self.perturbation_interval} epoch(s) from epoch {self.burn_in}, "
                f"bottom {self.quantile_fraction:g} copies top {self.quantile_fraction:g}, "
                f"resample probability {self.resample_probability:g}; synchronous: a decision waits for every trial)")


def split_scheduler(raw: Any) -> tuple[Any, dict[str, Any]]:
    """The `scheduler` mapping without its PBT keys, and those keys (parsed by `parse_pbt`)."""
    if not isinstance(raw, Mapping):
        return raw, {}
    if "pbt" in raw:
        fail("scheduler.pbt", f"unknown key; give PBT settings inside scheduler ({', '.join(PBT_KEYS)}) "
                              "with type: pbt")
    rest = {k: v for k, v in raw.items() if k not in PBT_KEYS}
    return rest, {k: v for k, v in raw.items() if k in PBT_KEYS}


def _mutation_param(key: str, raw: Any) -> dict[str, Any]:
    """A list is a categorical choice; otherwise a param mapping as in `space`."""
    where = f"scheduler.mutations.{key}"
    if isinstance(raw, list):
        return {"type": "categorical", "values": raw}
    if isinstance(raw, Mapping):
        if raw.get("type") == "grid":
            fail(f"{where}.type", "a grid is not a mutation; give a list, categorical, uniform, loguniform or int")
        return dict(raw)
    fail(where, f"got {raw!r}, expected a list of values or a param such as {{type: loguniform, low: 1e-5, "
                "high: 1e-3}}")


def parse_pbt(raw: Mapping[str, Any], base: Mapping[str, Any], pretrain_epochs: int, total_epochs: int) -> PBTConfig:
    """PBT settings checked against the trial config: mutated keys exist, may change mid-run, give valid configs."""
    hints = typing.get_type_hints(PBTConfig)
    values = {k: coerce(v, hints[k], f"scheduler.{k}") for k, v in raw.items() if k != "mutations"}
    cfg = PBTConfig(**values)
    if cfg.perturbation_interval < 1:
        fail("scheduler.perturbation_interval", f"got {cfg.perturbation_interval}, expected >= 1 epoch")
    if not 0 < cfg.quantile_fraction <= 0.5:
        fail("scheduler.quantile_fraction", f"got {cfg.quantile_fraction:g}, expected > 0 and <= 0.5")
    if not 0 <= cfg.resample_probability <= 1:
        fail("scheduler.resample_probability", f"got {cfg.resample_probability:g}, expected 0 to 1")
    burn_in = cfg.burn_in if cfg.burn_in is not None else pretrain_epochs + cfg.perturbation_interval
    if cfg.burn_in is not None and cfg.burn_in < 1:
        fail("scheduler.burn_in", f"got {cfg.burn_in}, expected >= 1 epoch or null")
    if burn_in >= total_epochs:
        fail("scheduler.burn_in", f"first decision at epoch {burn_in}, but trials run {total_epochs} epochs; "
                                  "lower burn_in or perturbation_interval, or add schedule.gan_epochs")

    muts = raw.get("mutations")
    if not isinstance(muts, Mapping) or not muts:
        fail("scheduler.mutations", f"got {muts!r}, expected a mapping of trial-config keys to a list or a param, "
                                    f"from {', '.join(MUTABLE)}")
    for key in muts:
        key = str(key)
        if key in MUTABLE:
            continue
        if key in FIELD_TYPES:
            fail(f"scheduler.mutations.{key}", f"not safe to change mid-run (a trial continues from another "
                                               f"trial's checkpoint); mutable keys: {', '.join(MUTABLE)}")
        unknown(f"scheduler.mutations.{key}", key, MUTABLE, "scheduler.mutations")
    as_space = {str(k): _mutation_param(str(k), v) for k, v in muts.items()}
    try:  # the space's own checks (types, bounds, every value a valid config on top of base)
        params = parse_space(as_space, base)
    except StudySpecError as exc:
        text = str(exc)
        raise StudySpecError("scheduler.mutations" + text[len("space"):] if text.startswith("space") else text) from None
    return dataclasses.replace(cfg, mutations=params, burn_in=burn_in)


def check_pbt_study(algorithm: str, multi: bool, repeats: int, trials: int | None) -> None:
    """What else a PBT study needs: one objective, a random initial population, one seed per trial."""
    if multi:
        fail("scheduler.type", "pbt ranks trials on one metric; a multi-objective study needs scheduler.type: none")
    if algorithm != "random":
        fail("searcher.algorithm", f"got {algorithm}; scheduler pbt draws its initial population at random "
                                   "(Tune's PBT takes no model-based searcher): set searcher.algorithm: random")
    if repeats != 1:
        fail("repeats", f"got {repeats}; under pbt trials exchange weights, so seeds are not repeats: use repeats: 1")
    if trials is not None and trials < 2:
        fail("trials", f"got {trials}; pbt needs a population of at least 2 trials")

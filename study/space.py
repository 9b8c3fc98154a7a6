"""The search space: params keyed by dotted trial-config keys, their load-time checks, their Optuna form.

A param is one of
    {type: categorical, values: [...]}        a sampled choice
    {type: grid, values: [...]}               every value, in a grid (searcher grid only)
    {type: uniform, low, high}                a float range
    {type: loguniform, low, high}             a float range sampled in log space (low > 0)
    {type: int, low, high, step: 1, log: false}
Every value a param can produce is checked at load by building a trial config with it
(`parse_space`), so a bad space fails before a study starts, naming `space.<key>`.

This module sits below `study.spec` (which builds on it), so the spec's error type and
its small type-checking helpers live here; import `StudySpecError` from `study.spec`.
"""

from __future__ import annotations

import difflib
import itertools
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from trainables.config import ConfigError, TrialConfig, load_config
from trainables.errors import UserError
from trainables.yamlio import coerce_value, describe_type

ParamType = Literal["categorical", "uniform", "loguniform", "int", "grid"]
PARAM_KEYS: dict[str, tuple[str, ...]] = {
    "categorical": ("type", "values"), "grid": ("type", "values"),
    "uniform": ("type", "low", "high"), "loguniform": ("type", "low", "high"),
    "int": ("type", "low", "high", "step", "log"),
}
MAX_INT_VALUES = 64  # int ranges up to this many values have every value checked at load
MAX_COMBOS = 256  # spaces up to this many checked combinations are checked jointly (~0.25 ms each)


class StudySpecError(UserError):
    """A study spec value is unknown, mistyped or impossible."""


# ----------------------------------------------------------------------------- helpers


def fail(where: str, msg: str) -> typing.NoReturn:
    raise StudySpecError(f"{where}: {msg}")


def short(v: Any) -> str:
    """A value as a person writes it in YAML: bare words, quoted odd strings."""
    return repr(v) if isinstance(v, str) and not v.isidentifier() else str(v)


def unknown(where: str, key: str, accepted: Iterable[str], what: str) -> typing.NoReturn:
    accepted = list(accepted)
    close = difflib.get_close_matches(key, accepted, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}?" if close else f"{what} accepts {', '.join(accepted)}"
    fail(where, f"unknown key; {hint}")


def check_keys(raw: Any, where: str, accepted: Sequence[str], what: str) -> None:
    """`raw` must be a mapping whose keys are all in `accepted` (one-line StudySpecError otherwise)."""
    if not isinstance(raw, Mapping):
        fail(where, f"got {raw!r}, expected a mapping with keys {', '.join(accepted)}")
    for key in raw:
        if key not in accepted:
            unknown(f"{where}.{key}", str(key), accepted, what)


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check a spec value against its annotation; int is accepted for float, nothing looser."""
    return coerce_value(value, tp, where, StudySpecError)


def _field_types(cls: type, prefix: str = "") -> dict[str, Any]:
    """Dotted trial-config key -> its annotation (`loss.beta` -> float)."""
    out: dict[str, Any] = {}
    for name, tp in typing.get_type_hints(cls).items():
        if isinstance(tp, type) and hasattr(tp, "__dataclass_fields__"):
            out.update(_field_types(tp, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = tp
    return out


FIELD_TYPES = _field_types(TrialConfig)  # the keys a space (and base) can name
SECTIONS = sorted({k.split(".")[0] for k in FIELD_TYPES if "." in k})


def _accepts(tp: Any, kind: type) -> bool:
    """Can a trial-config field annotated `tp` hold values of python type `kind`?"""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(a, kind) for a in typing.get_args(tp))
    if origin is Literal:
        return any(type(a) is kind for a in typing.get_args(tp))
    return tp is kind or (tp is float and kind is int)


def _trial_error(overrides: Mapping[str, Any]) -> str | None:
    """None when the dotted overrides give a valid trial config, else the config's message."""
    try:
        load_config(overrides=overrides)
    except ConfigError as exc:
        return str(exc)
    return None


# ----------------------------------------------------------------------------- params


@dataclass(frozen=True)
class Param:
    """One searched trial-config key: a choice, a float range or an int range."""

    type: ParamType
    values: tuple[Any, ...] | None = None  # categorical, grid
    low: float | None = None  # uniform, loguniform, int
    high: float | None = None
    step: int = 1  # int only
    log: bool = False  # int only (a float log range is `loguniform`)

    @property
    def discrete(self) -> bool:
        return self.type in ("categorical", "grid")

    def candidates(self) -> list[Any]:
        """Values checked at load: every choice, every value of a small int range, else the bounds."""
        if self.discrete:
            return list(self.values)
        if self.type == "int" and (self.high - self.low) // self.step < MAX_INT_VALUES:
            return list(range(self.low, self.high + 1, self.step))
        return [self.low, self.high]

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution it is sampled from (grid params are categorical)."""
        if self.discrete:
            return CategoricalDistribution(list(self.values))
        if self.type == "int":
            return IntDistribution(self.low, self.high, log=self.log, step=self.step)
        return FloatDistribution(self.low, self.high, log=self.type == "loguniform")

    def to_dict(self) -> dict[str, Any]:
        if self.discrete:
            return {"type": self.type, "values": list(self.values)}
        if self.type == "int":
            return {"type": "int", "low": self.low, "high": self.high, "step": self.step, "log": self.log}
        return {"type": self.type, "low": self.low, "high": self.high}

    def describe(self) -> str:
        if self.discrete:
            return f"{self.type} [{', '.join(short(v) for v in self.values)}]"
        extra = (f" step {self.step}" if self.step != 1 else "") + (" log" if self.log else "")
        return f"{self.type} [{short(self.low)}, {short(self.high)}]{extra}"


def parse_param(key: str, raw: Any) -> Param:
    """One param's own shape and bounds (its fit to the trial config is `parse_space`'s job)."""
    where = f"space.{key}"
    if not isinstance(raw, Mapping) or "type" not in raw:
        fail(where, f"got {raw!r}, expected a mapping with a type: {' | '.join(PARAM_KEYS)}")
    kind = raw["type"]
    if kind not in PARAM_KEYS:
        fail(f"{where}.type", f"got {kind!r}, expected one of {' | '.join(PARAM_KEYS)}")
    for k in raw:
        if k not in PARAM_KEYS[kind]:
            unknown(f"{where}.{k}", str(k), PARAM_KEYS[kind], f"a {kind} param")
    needed = PARAM_KEYS[kind][1:3]  # values, or low and high
    for k in needed:
        if k not in raw:
            fail(f"{where}.{k}", f"missing; a {kind} param needs {' and '.join(needed)}")
    if kind in ("categorical", "grid"):
        values = raw["values"]
        if not isinstance(values, list) or not values:
            fail(f"{where}.values", f"got {values!r}, expected a non-empty list")
        for i, v in enumerate(values):
            # optuna's CategoricalDistribution takes these and nothing else
            if v is not None and not isinstance(v, (bool, int, float, str)):
                fail(f"{where}.values[{i}]", f"got {v!r}, expected a scalar (null, bool, int, float, str)")
            if any(v == u and type(v) is type(u) for u in values[:i]):
                fail(f"{where}.values[{i}]", f"{short(v)} appears twice")
        return Param(kind, values=tuple(values))
    step, log = 1, False
    if kind == "int":
        low, high = (coerce(raw[k], int, f"{where}.{k}") for k in ("low", "high"))
        step = coerce(raw.get("step", 1), int, f"{where}.step")
        log = coerce(raw.get("log", False), bool, f"{where}.log")
        if step < 1:
            fail(f"{where}.step", f"got {step}, expected >= 1")
        if log and step != 1:
            fail(f"{where}.step", f"got {step}, a log int range needs step 1")
        if log and low < 1:
            fail(f"{where}.low", f"got {low}, expected >= 1 for a log int range")
    else:
        low, high = (coerce(raw[k], float, f"{where}.{k}") for k in ("low", "high"))
        if not (math.isfinite(low) and math.isfinite(high)):
            fail(where, f"got low {low}, high {high}, expected finite bounds")
        if kind == "loguniform" and low <= 0:
            fail(f"{where}.low", f"got {short(raw['low'])}, expected > 0 for a log-uniform range")
    if high <= low:
        fail(f"{where}.high", f"got {short(raw['high'])}, expected > low ({short(raw['low'])})")
    if kind == "int" and (high - low) % step:
        fail(f"{where}.high", f"got {high}, expected low plus a multiple of step {step}")
    return Param(kind, low=low, high=high, step=step, log=log)


def parse_space(raw: Any, base: Mapping[str, Any]) -> dict[str, Param]:
    """Params keyed by dotted trial-config keys, each value checked on top of `base` (flat)."""
    if not raw:
        # Ray's OptunaSearch refuses an empty space; a one-value grid param repeats one config
        fail("space", "missing or empty; name at least one trial-config key to search (to rerun "
                      "one configuration, use searcher grid, a one-value grid param and repeats)")
    if not isinstance(raw, Mapping):
        fail("space", f"got {raw!r}, expected a mapping of dotted trial-config keys to params")
    space: dict[str, Param] = {}
    for key, value in raw.items():
        key = str(key)
        if key not in FIELD_TYPES:
            close = difflib.get_close_matches(key, list(FIELD_TYPES), n=3, cutoff=0.6)
            if key in SECTIONS:
                example = next(k for k in FIELD_TYPES if k.startswith(key + "."))
                hint = f"a section; key the space by dotted fields such as {example}"
            elif close:
                hint = f"not a trial-config key; did you mean {' or '.join(close)}?"
            else:
                hint = f"not a trial-config key (sections: {', '.join(SECTIONS)})"
            fail(f"space.{key}", hint)
        if key == "seed":
            fail("space.seed", "seeds come from base seed + repeat index; use repeats instead")
        if key in base:
            fail(f"space.{key}", f"also fixed in base (base.{key}); a key is either fixed or searched")
        param = parse_param(key, value)
        tp = FIELD_TYPES[key]
        if param.type in ("uniform", "loguniform") and not _accepts(tp, float):
            fail(f"space.{key}.type",
                 f"a {param.type} range gives floats, but {key} takes {describe_type(tp)}; use int or categorical")
        if param.type == "int" and not _accepts(tp, int):
            fail(f"space.{key}.type", f"an int range gives ints, but {key} takes {describe_type(tp)}")
        space[key] = param
    _check_values(space, base)
    return space


def _check_values(space: dict[str, Param], base: Mapping[str, Any]) -> None:
    """Every value the space can produce must give a valid trial config on top of base.

    Small spaces are checked jointly (every combination of candidates), so values that are
    fine alone but clash (`scale: 4` with `data.patch_size: 50`) are caught, and values that
    are fine only together (`loss.pixel_weight: 0` with `loss.vgg_weight: 1`) pass. Larger
    spaces are checked one param at a time on top of base.
    """
    keys = list(space)
    candidates = [space[k].candidates() for k in keys]
    if math.prod(len(c) for c in candidates) <= MAX_COMBOS:
        combos: Iterable[dict[str, Any]] = (dict(zip(keys, c)) for c in itertools.product(*candidates))
    else:
        combos = ({k: v} for k, values in zip(keys, candidates) for v in values)
    for combo in combos:
        error = _trial_error({**base, **combo})
        if error is None:
            continue
        # blame one param when the message names it or when its value alone fails
        blamed = next((k for k in combo if error.startswith(f"{k}:")), None)
        if blamed is None:
            blamed = next((k for k in combo if _trial_error({**base, k: combo[k]})), None)
        if blamed is None:
            values = ", ".join(f"{k}={short(v)}" for k, v in combo.items())
            fail("space", f"{values} together give an invalid trial config: {error}")
        p, v = space[blamed], combo[blamed]
        where = f"space.{blamed}"
        if not p.discrete and v in (p.low, p.high) and len(p.candidates()) == 2:
            where += ".low" if v == p.low else ".high"
        fail(where, f"value {short(v)} gives an invalid trial config: {error}")


# ----------------------------------------------------------------------------- optuna


def optuna_space(space: Mapping[str, Param]) -> dict[str, BaseDistribution]:
    """The space as Optuna distributions, for `OptunaSearch(space=...)`; grid params are categorical."""
    return {key: p.distribution() for key, p in space.items()}


def grid_values(space: Mapping[str, Param]) -> dict[str, list[Any]]:
    """The grid for Optuna's GridSampler: every param's values (all must be choices)."""
    ranges = [k for k, p in space.items() if not p.discrete]
    if ranges:
        raise ValueError(f"ranges cannot be enumerated in a grid: {', '.join(ranges)}")
    return {k: list(p.values) for k, p in space.items()}

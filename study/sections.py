"""The spec's sections: searcher, scheduler, objective and resources, and their strict parsers.

`study.spec` builds a `StudySpec` from them; `study.profiles` parses a profile's resources
and base with the same functions (`section`, `flat_base`), so both fail alike.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import threading
import typing
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from optuna.samplers import BaseSampler, GridSampler, NSGAIISampler, RandomSampler, TPESampler

from study.mutations import PBTConfig
from study.space import Param, coerce, fail, grid_values, unknown
from trainables.metric_names import OBJECTIVE_METRICS
from trainables.yamlio import flatten

Algorithm = Literal["tpe", "random", "grid", "nsga2", "motpe"]
Mode = Literal["max", "min"]
METRICS = OBJECTIVE_METRICS  # what an objective may name (see trainables.metric_names)


class _NSGAIISampler(NSGAIISampler):
    """NSGA-II that pickles. Tune pickles the searcher into the study state (`tuner.pkl`, and again
    for `--resume`); Optuna 5.1's genetic samplers hold a `threading.Lock`, which pickle refuses.
    The lock is left out of the state and made anew on loading."""

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_thread_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()  # unused by Optuna versions without one


@dataclass(frozen=True)
class Searcher:
    """How Optuna picks configurations (`sampler` builds Optuna's sampler for a space)."""

    algorithm: Algorithm = "tpe"  # nsga2 and motpe are for multi-objective studies
    seed: int = 0  # the sampler's seed (the trials' seeds come from base `seed` + repeat)
    n_startup_trials: int = 4  # tpe/motpe: random trials before the model takes over

    def sampler(self, space: Mapping[str, Param]) -> BaseSampler:
        """The Optuna sampler for `OptunaSearch(sampler=...)`; motpe is TPE given a multi-objective study."""
        if self.algorithm in ("tpe", "motpe"):
            # multivariate models params jointly; constant_liar keeps concurrent trials from all sampling
            # the same point (both Optuna 5's defaults, set so the behaviour does not move with them)
            return TPESampler(seed=self.seed, n_startup_trials=self.n_startup_trials, multivariate=True,
                              constant_liar=True)
        if self.algorithm == "grid":
            return GridSampler(grid_values(space), seed=self.seed)
        if self.algorithm == "nsga2":
            return _NSGAIISampler(seed=self.seed)  # population 50 (Optuna's default)
        return RandomSampler(seed=self.seed)


@dataclass(frozen=True)
class Scheduler:
    """Early stopping by ASHA, or population-based training (study.mutations), on the objective, in epochs."""

    type: Literal["asha", "none", "pbt"] = "none"
    grace_period: int = 1  # epochs every trial runs before it can be stopped
    reduction_factor: float = 2.0  # ASHA keeps 1/reduction_factor of trials per rung
    max_t: int | None = None  # null: the most epochs a trial can run (pretrain + gan)
    pbt: PBTConfig | None = None  # type pbt: its settings (written flat inside `scheduler` in YAML)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "pbt"}
        return {**out, **self.pbt.to_dict()} if self.pbt is not None else out


@dataclass(frozen=True)
class Objective:
    """What a study optimises: one metric, or several (a Pareto front)."""

    metrics: tuple[str, ...] = ("val_psnr",)
    modes: tuple[Mode, ...] = ("max",)

    @property
    def multi(self) -> bool:
        return len(self.metrics) > 1

    @property
    def metric(self) -> str:
        if self.multi:
            raise ValueError("a multi-objective study has no single metric; use .metrics")
        return self.metrics[0]

    @property
    def mode(self) -> Mode:
        if self.multi:
            raise ValueError("a multi-objective study has no single mode; use .modes")
        return self.modes[0]

    def to_dict(self) -> dict[str, Any]:
        if self.multi:
            return {"metrics": list(self.metrics), "modes": list(self.modes)}
        return {"metric": self.metrics[0], "mode": self.modes[0]}


@dataclass(frozen=True)
class Resources:
    """What each trial reserves: `workers` Ray Train workers of this size each."""

    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    # restarts of a trial's Train workers (a killed worker, a preempted node) from its latest
    # checkpoint; one more failure and the trial is recorded `failed` while the study goes on
    max_failures: int = 2


def section(cls: type, raw: Any, where: str) -> Any:
    """Build a flat spec dataclass (searcher, scheduler, resources) from a mapping."""
    names = [f.name for f in dataclasses.fields(cls)]
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        fail(where, f"got {raw!r}, expected a mapping with keys {', '.join(names)}")
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in hints:
            unknown(f"{where}.{key}", str(key), names, where)
    return cls(**{k: coerce(v, hints[k], f"{where}.{k}") for k, v in raw.items()})


def flat_base(raw: Any, where: str = "base") -> dict[str, Any]:
    """`base` as flat dotted keys; nested sections and dotted keys may be mixed."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        fail(where, f"got {raw!r}, expected a mapping of trial-config overrides")
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        items = flatten(value, f"{key}.") if isinstance(value, Mapping) else {str(key): value}
        for dotted, v in items.items():
            if dotted in flat:
                fail(f"{where}.{dotted}", "set twice (once nested, once dotted)")
            flat[dotted] = v
    return flat


def parse_objective(raw: Any) -> Objective:
    if raw is None:
        return Objective()
    single, multi = ("metric", "mode"), ("metrics", "modes")
    if not isinstance(raw, Mapping):
        fail("objective", f"got {raw!r}, expected {{metric: val_psnr, mode: max}} or {{metrics: [...], modes: [...]}}")
    for key in raw:
        if key not in single + multi:
            unknown(f"objective.{key}", str(key), single + multi, "objective")
    if any(k in raw for k in single) and any(k in raw for k in multi):
        fail("objective", "give either metric and mode, or metrics and modes (multi-objective), not both")
    if any(k in raw for k in single):
        for k in single:
            if k not in raw:
                fail(f"objective.{k}", "missing; give both metric and mode (max or min)")
        pairs = [("objective.metric", raw["metric"], "objective.mode", raw["mode"])]
    else:
        for k in multi:
            if not isinstance(raw.get(k), list) or not raw[k]:
                fail(f"objective.{k}", f"got {raw.get(k)!r}, expected a non-empty list")
        if len(raw["modes"]) != len(raw["metrics"]):
            fail("objective.modes", f"got {len(raw['modes'])} modes for {len(raw['metrics'])} metrics, "
                                    "expected one per metric")
        pairs = [(f"objective.metrics[{i}]", metric, f"objective.modes[{i}]", mode)
                 for i, (metric, mode) in enumerate(zip(raw["metrics"], raw["modes"]))]
    metrics: list[str] = []
    for where, metric, mode_where, mode in pairs:
        if metric not in METRICS:
            close = difflib.get_close_matches(str(metric), METRICS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"expected one of {', '.join(METRICS)}"
            fail(where, f"got {metric!r}, not a reported metric; {hint}")
        if metric in metrics:
            fail(where, f"{metric} appears twice")
        metrics.append(metric)
        coerce(mode, Mode, mode_where)
    return Objective(tuple(metrics), tuple(mode for *_, mode in pairs))


def check_resources(resources: Resources) -> None:
    """What a trial reserves, checked: whole workers, finite CPUs and GPUs Ray can place."""
    if resources.workers < 1:
        fail("resources.workers", f"got {resources.workers}, expected >= 1")
    if not 0 < resources.cpus_per_worker < math.inf:  # written so that NaN fails too
        fail("resources.cpus_per_worker", f"got {resources.cpus_per_worker:g}, expected > 0 (finite)")
    if not resources.gpus_per_worker >= 0 or math.isinf(resources.gpus_per_worker):
        fail("resources.gpus_per_worker", f"got {resources.gpus_per_worker:g}, expected >= 0 (finite)")
    g = resources.gpus_per_worker
    if g > 1 and not float(g).is_integer():
        fail("resources.gpus_per_worker", f"got {g:g}, expected a fraction below 1 or a whole number of GPUs")
    if 0 < g < 1 and resources.workers > 1:  # NCCL refuses two ranks of one process group on one GPU
        fail("resources.gpus_per_worker", f"got {g:g} with {resources.workers} workers; a fraction of a GPU is "
                                          "for single-worker trials (resources.workers: 1), else give 1 GPU a worker")
    if 0 < g < 1 and round(g, 4) != g:
        fail("resources.gpus_per_worker", f"got {g:g}, expected at most 4 decimals (Ray's resource precision)")
    if resources.max_failures < 0:
        fail("resources.max_failures", f"got {resources.max_failures}, expected >= 0 restarts")

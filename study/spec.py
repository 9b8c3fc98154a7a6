"""The study spec schema: one YAML file per experiment, validated strictly before anything starts.

A spec says which trial-config values are fixed (`base`), which are searched (`space`),
how they are chosen (`searcher`), how trials are stopped early (`scheduler`), what is
optimised (`objective`), and how much runs (`trials`, `repeats`, `resources`). Loading is
strict like the trial config: unknown keys, wrong types and impossible values fail with
a one-line `StudySpecError` naming the field. Every value the space can produce is
checked by building a trial config with it, so a bad search space fails at load time,
not hours into a study.

Decisions worth knowing:
- `grid` params need `searcher.algorithm: grid` (and the grid searcher needs every param
  to be `grid` or `categorical`); nothing is switched to grid behind the user's back.
- `scheduler.type` defaults to `none`: ASHA stops trials on one metric and Optuna then
  records the stopped trial as complete with its early value (it biases TPE), so early
  stopping is something a spec asks for. ASHA with a multi-objective study is an error.
- `repeats > 1` with ASHA is allowed, but ASHA judges every run on its own, so one
  configuration's repeats may be stopped at different epochs: compare them at a common epoch.
- YAML here reads `1e-4` as a number (plain YAML 1.1 reads it as text).
- One selection rule: a trial's score is its best validation epoch so far. Tune is given,
  for each objective metric M, `best_M` (`selection_metric`): the best value of M over the
  epochs reported so far (by M's mode), so Optuna's final value, ASHA's rung comparisons
  and the report's best-epoch tables rank trials by the same number; the checkpoint kept
  is the epoch that holds it, and that epoch's generator is the one scored on test sets.
- `claims:` (study.claims) are checked against the space here; `profile` names the size
  the study runs at (study.profiles; applied by `load_spec`, recorded in the spec).

The sections (searcher, scheduler, objective, resources) and their parsers are in
`study.sections`; the plan printed before a study starts is `study.plan`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from study.claims import Claim, parse_claims
from study.profiles import DEFAULT_PROFILE, apply_profile
from study.mutations import check_pbt_study, parse_pbt, split_scheduler
from study.sections import (METRICS, Objective, Resources, Scheduler, Searcher, check_resources, flat_base,
                            parse_objective, section)
from study.space import Param, StudySpecError, coerce, fail, parse_param, parse_space, unknown
from trainables.config import VIDEO_SOURCES, ConfigError, TrialConfig, apply_overrides, load_config
from trainables.config import read_yaml as config_read_yaml

__all__ = [
    "METRICS", "TIME_ATTR", "DEFAULT_STORAGE", "StudySpecError", "Param", "Searcher", "Scheduler",
    "Objective", "Resources", "StudySpec", "from_dict", "load_spec", "with_base_overrides",
    "read_yaml", "spec_hash", "trial_config", "searched_keys", "Claim", "parse_claims", "selection_metric",
    "selection_values",
]

TIME_ATTR = "epoch"  # the reported counter ASHA measures time in
DEFAULT_STORAGE = "./study_results"  # used by the runner when `storage` is null
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_MULTI_ONLY = ("nsga2", "motpe")


def selection_metric(metric: str) -> str:
    """The name Tune sees for an objective: its best value over the epochs so far (see above)."""
    return metric if metric.startswith("best_") else f"best_{metric}"


def selection_values(best: dict[str, float], metrics: Mapping[str, Any], objective: Objective) -> dict[str, float]:
    """Fold one epoch's metrics into `best` (objective -> best finite value so far, updated in place)
    and return what Tune is given: {selection_metric(m): best so far, NaN before any finite value}."""
    out = {}
    for name, mode in zip(objective.metrics, objective.modes):
        value = metrics.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            old = best.get(name)
            if old is None or (value > old if mode == "max" else value < old):
                best[name] = float(value)
        out[selection_metric(name)] = best.get(name, math.nan)
    return out


# ----------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class StudySpec:
    """A validated study. `base` is flat dotted trial-config keys; `trials` is always set."""

    name: str  # letters, digits, - and _: an MLflow experiment name and a folder name
    description: str = ""  # the question the study answers
    base: dict[str, Any] = field(default_factory=dict)  # fixed trial-config overrides
    space: dict[str, Param] = field(default_factory=dict)  # searched trial-config keys (one or more)
    searcher: Searcher = field(default_factory=Searcher)
    scheduler: Scheduler = field(default_factory=Scheduler)
    objective: Objective = field(default_factory=Objective)
    trials: int | None = None  # configurations to try; null in YAML: the grid size (grid only)
    repeats: int = 1  # seeds per configuration: base seed + 0, 1, ...
    max_concurrent: int | None = None  # null: as many as the resources allow
    resources: Resources = field(default_factory=Resources)
    storage: str | None = None  # local path or URI (s3://...); null: ./study_results
    tracking_uri: str | None = None  # null: MLflow's default (sqlite:///mlflow.db)
    claims: tuple[Claim, ...] = ()  # what the study tests (study.claims); the report's verdict table
    profile: str | None = None  # the profile load_spec folded in (laptop, paper, ...), for the record
    # the mapping this spec was validated from (so `with_base_overrides` re-resolves max_t)
    source: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def total_trials(self) -> int:
        return self.trials * self.repeats

    @property
    def base_config(self) -> TrialConfig:
        """The base as a trial config (completed by the space's first values where base alone is not one)."""
        try:
            return load_config(overrides=self.base)
        except ConfigError:
            return load_config(overrides={**self.base, **{k: p.candidates()[0] for k, p in self.space.items()}})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "base": dict(self.base),
            "space": {k: p.to_dict() for k, p in self.space.items()},
            "searcher": dataclasses.asdict(self.searcher),
            "scheduler": self.scheduler.to_dict(),
            "objective": self.objective.to_dict(),
            "trials": self.trials,
            "repeats": self.repeats,
            "max_concurrent": self.max_concurrent,
            "resources": dataclasses.asdict(self.resources),
            "storage": self.storage,
            "tracking_uri": self.tracking_uri,
            "claims": [c.to_dict() for c in self.claims],
            "profile": self.profile,
        }

    def dump_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_TOP_KEYS = tuple(f.name for f in dataclasses.fields(StudySpec) if f.name != "source")
_SIMPLE = ("name", "description", "trials", "repeats", "max_concurrent", "storage", "tracking_uri", "profile")
_TOP_FIELDS = {f.name: f for f in dataclasses.fields(StudySpec)}
_TOP_HINTS = {k: v for k, v in typing.get_type_hints(StudySpec).items() if k in _SIMPLE}


# ----------------------------------------------------------------------------- parts


def _parse_base(raw: Any, raw_space: Any = None) -> tuple[dict[str, Any], TrialConfig]:
    """`base` flat, and as a trial config. Base alone may be incomplete where a searched key
    completes it (datasets.yaml: data.path fixed, data.source searched): then it is checked with
    the space's first values (every value is checked with base by `parse_space`)."""
    flat = flat_base(raw)
    try:
        return flat, load_config(overrides=flat)
    except ConfigError as exc:
        try:
            first = {str(k): parse_param(str(k), v).candidates()[0] for k, v in (raw_space or {}).items()
                     if str(k) not in flat}
            if first:
                return flat, load_config(overrides={**flat, **first})
        except (ConfigError, StudySpecError, AttributeError):
            pass
        raise StudySpecError(f"base.{exc}") from None


def _max_epochs(space: dict[str, Param], base_cfg: TrialConfig) -> int:
    """The most epochs any trial can run: pretrain + gan, at their largest in the space."""
    total = 0
    for key in ("schedule.pretrain_epochs", "schedule.gan_epochs"):
        p = space.get(key)
        total += max(p.candidates()) if p is not None else getattr(base_cfg.schedule, key.split(".")[1])
    return int(total)


def _top(raw: Mapping[str, Any], key: str) -> Any:
    """A scalar top-level field, checked against its annotation, default from the dataclass."""
    default = _TOP_FIELDS[key].default
    return coerce(raw.get(key, None if default is dataclasses.MISSING else default), _TOP_HINTS[key], key)


# ----------------------------------------------------------------------------- building


def from_dict(raw: Any) -> StudySpec:
    """Build and validate a spec from a nested mapping (missing keys take defaults)."""
    if not isinstance(raw, Mapping):
        fail("spec", f"got {raw!r}, expected a mapping of study fields ({', '.join(_TOP_KEYS)})")
    for key in raw:
        if key not in _TOP_KEYS:
            unknown(str(key), str(key), _TOP_KEYS, "a study spec")
    if raw.get("name") is None:
        fail("name", "missing; give the study a name (letters, digits, - and _)")
    name = _top(raw, "name")
    if not _NAME.fullmatch(name):
        fail("name", f"got {name!r}, expected letters, digits, - and _ only "
                     "(it names a folder and an MLflow experiment)")
    base, base_cfg = _parse_base(raw.get("base"), raw.get("space"))
    searcher = section(Searcher, raw.get("searcher"), "searcher")
    scheduler_raw, pbt_raw = split_scheduler(raw.get("scheduler"))
    scheduler = section(Scheduler, scheduler_raw, "scheduler")
    resources = section(Resources, raw.get("resources"), "resources")
    objective = parse_objective(raw.get("objective"))
    space = parse_space(raw.get("space"), base)
    claims = parse_claims(raw.get("claims"), space)
    trials, repeats, max_concurrent = _top(raw, "trials"), _top(raw, "repeats"), _top(raw, "max_concurrent")

    # the searcher against the space and the objective
    algo = searcher.algorithm
    if searcher.seed < 0:
        fail("searcher.seed", f"got {searcher.seed}, expected >= 0")
    if searcher.n_startup_trials < 0:
        fail("searcher.n_startup_trials", f"got {searcher.n_startup_trials}, expected >= 0")
    for key, p in space.items():
        if algo == "grid" and not p.discrete:
            fail(f"space.{key}.type", f"a {p.type} range cannot be enumerated; searcher grid needs grid "
                                      "or categorical params")
        if algo != "grid" and p.type == "grid":
            fail(f"space.{key}.type", f"grid params need searcher.algorithm: grid (got {algo}); "
                                      "use type: categorical for a sampled choice")
    if algo in _MULTI_ONLY and not objective.multi:
        fail("searcher.algorithm", f"{algo} is multi-objective; give objective.metrics and objective.modes "
                                   "(two or more), or use tpe")

    # the scheduler: ASHA counts epochs, so max_t defaults to the longest trial
    if scheduler.max_t is not None and scheduler.max_t < 1:
        fail("scheduler.max_t", f"got {scheduler.max_t}, expected >= 1 epoch or null")
    if scheduler.grace_period < 1:
        fail("scheduler.grace_period", f"got {scheduler.grace_period}, expected >= 1 epoch")
    if not 1 < scheduler.reduction_factor < math.inf:  # written so that NaN fails too
        fail("scheduler.reduction_factor", f"got {scheduler.reduction_factor:g}, expected > 1 (finite)")
    if scheduler.type == "asha":
        if objective.multi:
            fail("scheduler.type", "asha stops trials on one metric; a multi-objective study needs "
                                   "scheduler.type: none")
        max_t = scheduler.max_t if scheduler.max_t is not None else _max_epochs(space, base_cfg)
        if scheduler.grace_period > max_t:
            fail("scheduler.grace_period", f"got {scheduler.grace_period}, expected at most max_t ({max_t}) epochs")
        scheduler = dataclasses.replace(scheduler, max_t=max_t)
    if scheduler.type == "pbt":
        check_pbt_study(searcher.algorithm, objective.multi, repeats, trials)
        pbt = parse_pbt(pbt_raw, base, base_cfg.schedule.pretrain_epochs, _max_epochs(space, base_cfg))
        scheduler = dataclasses.replace(scheduler, pbt=pbt)
    elif pbt_raw:
        fail(f"scheduler.{next(iter(pbt_raw))}", f"a pbt setting; set scheduler.type: pbt (got {scheduler.type})")

    # how much runs, where
    grid = math.prod(len(p.values) for p in space.values()) if algo == "grid" else None
    if trials is None and grid is None:
        fail("trials", "missing; give the number of configurations to try (only searcher grid may leave it null)")
    if trials is not None and trials < 1:
        fail("trials", f"got {trials}, expected >= 1")
    if grid is not None and trials is not None and trials > grid:
        fail("trials", f"got {trials}, but the grid has {grid} points; leave trials null to run the whole grid")
    if repeats < 1:
        fail("repeats", f"got {repeats}, expected >= 1")
    if max_concurrent is not None and max_concurrent < 1:
        fail("max_concurrent", f"got {max_concurrent}, expected >= 1 or null")
    check_resources(resources)
    sources = set(space["data.source"].values) if "data.source" in space else {base_cfg.data.source}
    if "val_tc" in objective.metrics and not sources & set(VIDEO_SOURCES):
        fail("objective", f"val_tc is reported by video sources only ({', '.join(VIDEO_SOURCES)}), and this "
                          f"study's data.source is {', '.join(sorted(sources))}; optimise val_psnr or use a video source")
    devices = set(space["runtime.device"].values) if "runtime.device" in space else {base_cfg.runtime.device}
    if "cuda" in devices and resources.gpus_per_worker == 0:
        fail("resources.gpus_per_worker", "got 0, but runtime.device can be cuda and Ray hides GPUs from "
                                          "workers that reserve none")
    storage, tracking_uri = _top(raw, "storage"), _top(raw, "tracking_uri")
    for key, value in (("storage", storage), ("tracking_uri", tracking_uri)):
        if value is not None and not value.strip():
            fail(key, "empty; give a path or URI, or null for the default")

    return StudySpec(
        name=name, description=_top(raw, "description"), base=base, space=space, searcher=searcher,
        scheduler=scheduler, objective=objective, trials=grid if trials is None else trials,
        repeats=repeats, max_concurrent=max_concurrent, resources=resources, storage=storage,
        tracking_uri=tracking_uri, claims=claims, profile=_top(raw, "profile"), source=_plain(raw))


def _plain(tree: Any) -> Any:
    """A deep copy of a YAML-like tree (mappings and lists)."""
    if isinstance(tree, Mapping):
        return {k: _plain(v) for k, v in tree.items()}
    return [_plain(v) for v in tree] if isinstance(tree, list) else tree


# ----------------------------------------------------------------------------- loading


def read_yaml(path: str | Path) -> dict[str, Any]:
    return config_read_yaml(path, what="study spec file", error=StudySpecError)


def _apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`trials=4`, `searcher.seed=1` set spec fields; `base.loss.beta=0.01` sets a base key."""
    raw = _plain(raw)
    spec_keys: dict[str, Any] = {}
    for key, value in overrides.items():
        head = key.split(".")[0]
        if head == "base" and "." in key:
            raw["base"] = {**flat_base(raw.get("base")), key.split(".", 1)[1]: value}
        elif head == "space":
            fail(key, "the search space cannot be overridden; edit the spec file")
        elif head not in _TOP_KEYS:
            unknown(key, head, _TOP_KEYS, "a study spec")
        else:
            spec_keys[key] = value
    try:
        return apply_overrides(raw, spec_keys)
    except ConfigError as exc:
        raise StudySpecError(str(exc)) from None


def load_spec(path: str | Path, overrides: Mapping[str, Any] | None = None,
              profile: str | None = None) -> StudySpec:
    """Read, fold in the profile (`profile`, else the file's own `profile:`, else laptop),
    override (dotted spec keys; `base.`-prefixed trial-config keys) and validate."""
    raw = read_yaml(path)
    if isinstance(raw, Mapping):
        name = profile or raw.get("profile") or DEFAULT_PROFILE
        if not isinstance(name, str):
            fail("profile", f"got {name!r}, expected a profile name such as laptop or paper")
        raw = apply_profile(raw, name, path)
    if overrides:
        raw = _apply_overrides(raw, overrides)
    return from_dict(raw)


def with_base_overrides(spec: StudySpec, overrides: Mapping[str, Any]) -> StudySpec:
    """The CLI's `--set key=value` (trial-config keys) folded into `base`, then revalidated."""
    raw = _plain(spec.source or spec.to_dict())
    raw["base"] = {**flat_base(raw.get("base")), **overrides}
    return from_dict(raw)


def spec_hash(spec: StudySpec) -> str:
    """12 hex chars of the sha256 of the resolved spec's canonical JSON."""
    text = json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------- using


def trial_config(spec: StudySpec, sampled: Mapping[str, Any], repeat_index: int = 0) -> TrialConfig:
    """THE path from a trial's sampled flat dict to a validated trial config.

    base <- sampled values <- seed = base seed + repeat_index. `sampled` must hold
    space keys only; a value the space could not produce may still fail (`ConfigError`).
    """
    extra = set(sampled) - set(searched_keys(spec))
    if extra:
        raise ValueError(f"sampled keys not in the study's space: {', '.join(sorted(extra))}")
    if not 0 <= repeat_index < spec.repeats:
        raise ValueError(f"repeat_index {repeat_index} outside 0..{spec.repeats - 1}")
    seed = spec.base_config.seed + repeat_index
    return load_config(overrides={**spec.base, **sampled, "seed": seed})


def searched_keys(spec: StudySpec) -> tuple[str, ...]:
    """The trial-config keys a trial's Tune config may set: the space's, then PBT's mutated keys."""
    muts = spec.scheduler.pbt.mutations if spec.scheduler.pbt is not None else {}
    return tuple(dict.fromkeys((*spec.space, *muts)))

"""A spec's `claims:`: statements a study tests, each a comparison of groups of trials on one metric.

A claim names what is compared, the metric, which way is better and the expected order;
`reports.verdicts` turns it into a verdict over seeds. Three ways to form the groups:

    compare: {key: loss.family, values: [lsgan, bce, wgan_gp]}
        one group per value of a searched key; the FIRST value is expected better than
        each of the others (two values: "A beats B"; more: "A is best").
    compare: {groups: {gan: {loss.beta: 0.01}, mse: {loss.beta: 0.0}}}
        named groups of trials by searched-key filters; the first is expected better
        than each of the others.
    compare: {baseline: bicubic}
        each trial against its own bicubic score of the same metric (`val_hf` against
        `bicubic_hf`, `test_set5_psnr` against `test_set5_bicubic_psnr`): paired by trial.

`where: {key: value, ...}` (searched keys) narrows every group. `better` is `higher`,
`lower`, `closer` (to `target`, e.g. HF ratio 1) or `fewer` (a rate: the share of trials
that diverged; metric `diverged` only). Validation is strict like the rest of the spec:
unknown keys, unknown metrics and keys that are not searched fail in one line.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from study.space import Param, check_keys, fail, unknown
from trainables.metric_names import TABLE, TEST_METRIC, bicubic_twin

Better = Literal["higher", "lower", "closer", "fewer"]
BETTER = ("higher", "lower", "closer", "fewer")
CLAIM_KEYS = ("name", "statement", "metric", "better", "target", "compare", "where")
COMPARE_KEYS = ("key", "values", "groups", "baseline")
# per-epoch validation metrics (read at a trial's selected epoch) and their bicubic twins
_VAL = tuple(m for m in TABLE if m.kind == "val")
EPOCH_METRICS = (*(m.name for m in _VAL), *(m.bicubic for m in _VAL if m.bicubic))
# whole-run metrics (read from a trial's final result) and the divergence flag
FINAL_METRICS = tuple(m.name for m in TABLE if m.kind == "final")
_NAME = re.compile(r"[A-Za-z0-9_-]+")


def known_metric(metric: str) -> bool:
    return metric in EPOCH_METRICS or metric in FINAL_METRICS or bool(TEST_METRIC.match(metric))


@dataclass(frozen=True)
class Claim:
    """One validated claim; `groups` is (label, filters) with the expected-better group first."""

    name: str
    metric: str
    better: Better
    groups: tuple[tuple[str, dict[str, Any]], ...] = ()  # empty for a bicubic baseline
    statement: str = ""
    target: float | None = None  # `closer` only
    key: str | None = None  # the compared searched key (compare.key), for the confound list
    baseline: str | None = None  # "bicubic": each trial against its own bicubic score
    where: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "statement": self.statement, "metric": self.metric,
                               "better": self.better}
        if self.target is not None:
            out["target"] = self.target
        if self.baseline:
            out["compare"] = {"baseline": self.baseline}
        elif self.key is not None:
            out["compare"] = {"key": self.key, "values": [f[self.key] for _, f in self.groups]}
        else:
            out["compare"] = {"groups": {label: dict(f) for label, f in self.groups}}
        if self.where:
            out["where"] = dict(self.where)
        return out


def _searched(space: dict[str, Param], key: str, where: str) -> Param:
    if key not in space:
        close = difflib.get_close_matches(key, list(space), n=1)
        hint = f"did you mean {close[0]}?" if close else f"searched keys: {', '.join(space) or 'none'}"
        fail(where, f"{key} is not a searched key of this study; {hint}")
    return space[key]


def _value(space: dict[str, Param], key: str, value: Any, where: str) -> Any:
    """A filter value the searched key can take (a listed choice, or inside the range)."""
    p = _searched(space, key, where)
    if p.discrete:
        for v in p.values:
            if v == value and isinstance(v, bool) == isinstance(value, bool):
                return v
        fail(f"{where}.{key}", f"got {value!r}, expected one of the searched values {list(p.values)}")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not p.low <= value <= p.high:
        fail(f"{where}.{key}", f"got {value!r}, expected a number in the searched range [{p.low:g}, {p.high:g}]")
    return value


def _filters(raw: Any, space: dict[str, Param], where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not raw:
        fail(where, f"got {raw!r}, expected a mapping of searched key: value")
    return {str(k): _value(space, str(k), v, where) for k, v in raw.items()}


def _compare(raw: Any, space: dict[str, Param], metric: str, where: str) -> tuple:
    if not isinstance(raw, Mapping):
        fail(where, f"got {raw!r}, expected {{key: K, values: [...]}}, {{groups: {{...}}}} or {{baseline: bicubic}}")
    for k in raw:
        if k not in COMPARE_KEYS:
            unknown(f"{where}.{k}", str(k), COMPARE_KEYS, "compare")
    forms = [k for k in ("key", "groups", "baseline") if k in raw]
    if len(forms) != 1:
        fail(where, "give exactly one of key (with values), groups, or baseline")
    if "values" in raw and forms != ["key"]:
        fail(f"{where}.values", "values go with compare.key")
    if forms == ["baseline"]:
        if raw["baseline"] != "bicubic":
            fail(f"{where}.baseline", f"got {raw['baseline']!r}, expected bicubic")
        if bicubic_twin(metric) is None:
            fail(f"{where}.baseline", f"{metric} has no bicubic score to compare with; use val_psnr, val_ssim, "
                                      "val_hf, val_tc, val_grid or test_<set>_psnr|ssim|hf")
        return (), None, "bicubic"
    if forms == ["key"]:
        key = str(raw["key"])
        _searched(space, key, f"{where}.key")
        values = raw.get("values")
        if not isinstance(values, list) or len(values) < 2:
            fail(f"{where}.values", f"got {values!r}, expected a list of 2 or more searched values, "
                                    "the expected-better one first")
        picked = [_value(space, key, v, where) for v in values]
        if len(set(map(repr, picked))) != len(picked):
            fail(f"{where}.values", "a value appears twice")
        groups = tuple((f"{key.rsplit('.', 1)[-1]}={v}", {key: v}) for v in picked)
        return groups, key, None
    raw_groups = raw["groups"]
    if not isinstance(raw_groups, Mapping) or len(raw_groups) < 2:
        fail(f"{where}.groups", f"got {raw_groups!r}, expected 2 or more named groups of filters, "
                                "the expected-better one first")
    groups = tuple((str(label), _filters(f, space, f"{where}.groups.{label}")) for label, f in raw_groups.items())
    return groups, None, None


def parse_claims(raw: Any, space: dict[str, Param]) -> tuple[Claim, ...]:
    """Validate a spec's `claims:` list against its search space."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        fail("claims", f"got {raw!r}, expected a list of claims (name, metric, better, compare)")
    claims: list[Claim] = []
    for i, c in enumerate(raw):
        where = f"claims[{i}]"
        check_keys(c, where, CLAIM_KEYS, "a claim")
        for k in ("name", "metric", "better", "compare"):
            if k not in c:
                fail(f"{where}.{k}", "missing")
        name = str(c["name"])
        if not _NAME.fullmatch(name) or name in {x.name for x in claims}:
            fail(f"{where}.name", f"got {name!r}, expected a unique name of letters, digits, - and _")
        metric = str(c["metric"])
        if not known_metric(metric):
            close = difflib.get_close_matches(metric, EPOCH_METRICS + FINAL_METRICS, n=1)
            hint = f"did you mean {close[0]}?" if close else \
                f"expected one of {', '.join(EPOCH_METRICS + FINAL_METRICS)} or test_<set>_psnr|ssim|hf"
            fail(f"{where}.metric", f"got {metric!r}, not a reported metric; {hint}")
        better = c["better"]
        if better not in BETTER:
            fail(f"{where}.better", f"got {better!r}, expected one of {', '.join(BETTER)}")
        if (better == "fewer") != (metric == "diverged"):
            fail(f"{where}.better", "fewer (a rate over seeds) goes with metric diverged, and diverged with fewer")
        target = c.get("target")
        if better == "closer":
            if not isinstance(target, (int, float)) or isinstance(target, bool):
                fail(f"{where}.target", f"got {target!r}, expected a number (better: closer needs a target, "
                                        "e.g. 1 for an HF ratio)")
            target = float(target)
        elif target is not None:
            fail(f"{where}.target", "only better: closer takes a target")
        groups, key, baseline = _compare(c["compare"], space, metric, f"{where}.compare")
        filters = _filters(c.get("where"), space, f"{where}.where")
        if key is not None and key in filters:
            fail(f"{where}.where.{key}", "is the compared key; leave it out of where")
        claims.append(Claim(name=name, metric=metric, better=better, groups=groups,
                            statement=str(c.get("statement") or ""), target=target, key=key, baseline=baseline,
                            where=filters))
    return tuple(claims)

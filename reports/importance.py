"""Parameter importances with Optuna's evaluator, from an in-memory study rebuilt from the trials."""

from __future__ import annotations

import math
import warnings
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from reports.load import PARAM_PREFIX
from reports.tables import is_continuous, objectives
from study.spec import StudySpec


def _value(raw: Any, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        # params come back from MLflow as text: match the choice by its text form
        return next((c for c in dist.choices if str(c) == str(raw)), raw)
    return int(raw) if isinstance(dist, IntDistribution) else float(raw)


def param_importances(best: pd.DataFrame, spec: StudySpec,
                      keys: list[str]) -> tuple[dict[str, dict[str, float]], str | None]:
    """({objective metric: {key: importance}}, None), or ({}, why it was skipped).

    Needs a continuous param in the space, >= 2 searched params that vary, and >= 2
    trials with objective values. Uses Optuna's default evaluator (PED-ANOVA in Optuna 5).
    """
    space = spec.space
    if not any(is_continuous(spec, k) for k in keys):
        return {}, "no continuous settings searched: the grouped table already shows every setting"
    objs = objectives(spec)
    metrics = [m for m, _ in objs]
    usable = best.dropna(subset=metrics) if all(m in best for m in metrics) else best.iloc[0:0]
    varying = [k for k in keys if k in space and PARAM_PREFIX + k in usable
               and usable[PARAM_PREFIX + k].map(str).nunique() > 1]
    if len(varying) < 2:
        return {}, (f"parameter importances need at least 2 searched params that vary across trials "
                    f"with objective values; {len(varying)} do ({', '.join(varying) or 'none'})")
    if len(usable) < 2:
        return {}, "parameter importances need at least 2 trials with objective values"
    dists = {k: space[k].distribution() for k in varying}  # as the study sampled them
    study = optuna.create_study(directions=["maximize" if m == "max" else "minimize" for _, m in objs])
    for _, r in usable.iterrows():
        values = [float(r[m]) for m in metrics]
        if not all(math.isfinite(v) for v in values):
            continue
        params = {k: _value(r[PARAM_PREFIX + k], d) for k, d in dists.items()}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, values=values))
    out: dict[str, dict[str, float]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature and small-sample warnings
        for i, (metric, mode) in enumerate(objs):
            # with an explicit target, PED-ANOVA takes lower as better: negate maximised ones
            sign = -1.0 if mode == "max" else 1.0
            target = (lambda t, i=i, sign=sign: sign * t.values[i]) if len(metrics) > 1 else None
            found = optuna.importance.get_param_importances(study, target=target)
            out[metric] = {k: float(v) for k, v in found.items()}
    return out, None

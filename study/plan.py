"""The trial plan: lines that describe what a study will run, printed (and logged) before it starts."""

from __future__ import annotations

from study.profiles import profile_notes
from study.space import short
from study.spec import DEFAULT_STORAGE, TIME_ATTR, StudySpec, selection_metric, spec_hash


def plan(spec: StudySpec) -> list[str]:
    """Lines that describe what the study will run, for printing before it starts."""
    s, sch, o, r = spec.searcher, spec.scheduler, spec.objective, spec.resources
    searcher = f"searcher: {s.algorithm} (seed {s.seed}"
    if s.algorithm in ("tpe", "motpe"):
        searcher += f", {s.n_startup_trials} random startup trials, multivariate"
    if s.algorithm == "nsga2":
        searcher += ", population 50: the first 50 trials are random"
    lines = [f"study: {spec.name} (spec {spec_hash(spec)})"]
    if spec.description:
        lines.append(f"question: {spec.description.strip()}")
    lines.append(searcher + ")")
    if sch.type == "asha":
        lines.append(f"scheduler: asha on {TIME_ATTR} (grace period {sch.grace_period}, "
                     f"reduction factor {sch.reduction_factor:g}, max_t {sch.max_t})")
    elif sch.pbt is not None:
        lines.append(f"scheduler: {sch.pbt.describe()}")
        lines += [f"  mutates {k}: {p.describe()}" for k, p in sch.pbt.mutations.items()]
        lines.append(f"  ranks trials on their latest {o.metric} (the state a losing trial copies), not the best so far")
    else:
        lines.append("scheduler: none (every trial runs all its epochs)")
    goals = ", ".join(f"{'maximise' if m == 'max' else 'minimise'} {n}" for n, m in zip(o.metrics, o.modes))
    lines.append(f"objective: {goals}" + (" (Pareto front)" if o.multi else ""))
    lines.append(f"trials: {spec.trials} configuration(s) x {spec.repeats} repeat(s) = {spec.total_trials} trials")
    lines.append(f"concurrency: {spec.max_concurrent if spec.max_concurrent else 'as many as the resources allow'}")
    lines.append(f"resources per trial: {r.workers} worker(s) x ({r.cpus_per_worker:g} CPU, {r.gpus_per_worker:g} GPU), "
                 f"up to {r.max_failures} worker restart(s)")
    lines.append(f"storage: {spec.storage or DEFAULT_STORAGE + ' (default)'}")
    lines.append(f"tracking: {spec.tracking_uri or 'MLflow default (sqlite:///mlflow.db)'}")
    if spec.profile:
        lines += profile_notes(spec.space, spec.profile)
    sel = ", ".join(f"{selection_metric(m)} (best {m} so far)" for m in o.metrics)
    lines.append(f"selection: each trial is scored at its best validation epoch so far; Tune sees {sel}")
    if spec.base:
        lines.append("base: " + ", ".join(f"{k}={short(v)}" for k, v in spec.base.items()))
    lines.append("space:")
    width = max(len(k) for k in spec.space)
    lines += [f"  {k:<{width}}  {p.describe()}" for k, p in spec.space.items()]
    if spec.claims:
        lines.append("claims:")
        lines += [f"  {c.name}: {c.statement or c.metric} ({c.better} {c.metric})" for c in spec.claims]
    return lines

"""Verdicts on a spec's claims: group means with bootstrap intervals over seeds, the difference, P(improvement).

For each claim (study.claims) and each pair (expected-better group A, other group B):
- each group's mean of the metric over its trials (one trial per seed) with a 95%
  bootstrap interval (`scipy.stats.bootstrap`, percentile method, 9999 resamples, a fixed
  seed: the same study gives the same report; percentile rather than BCa because a
  bicubic baseline is constant over seeds, where BCa is undefined);
- the difference of the judged quantity, A - B, with its bootstrap interval (two
  independent samples; for `baseline: bicubic` the per-trial paired difference). The judged
  quantity is the metric, except `better: closer`, where it is |metric - target|;
- the probability of improvement, P(a random trial of A beats one of B) = U / (m n) from
  the Mann-Whitney U statistic (ties count half);
- the verdict: **holds** when the difference's interval excludes 0 in the expected
  direction, **contradicted** when it excludes 0 the other way, **not testable** when a
  group has fewer than 2 trials with a value, **inconclusive** otherwise, with the seeds per
  group that would decide it: n = 2 ((z_0.975 + z_0.8) s / d)^2 for the observed difference
  d and pooled standard deviation s (80% power; n = ((z+z) s_d / d)^2 when paired).
- confounds: every logged setting whose values differ between A's trials and B's, other
  than the compared keys and the seed.
A claim holds when every pair holds, is contradicted when any pair is, and is not
testable when any pair is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from reports.load import PARAM_PREFIX
from study.claims import Claim
from trainables.metric_names import bicubic_twin

CONFIDENCE = 0.95
RESAMPLES = 9999
SEED = 0  # the bootstrap's generator seed: a report is reproducible
POWER_Z = 0.8416  # z of 80% power, for the seeds-to-decide estimate
NOT_COMPARED = ("seed",)  # settings that differ between groups by design


@dataclass
class Pair:
    """One comparison of a claim: A (expected better) against B."""

    claim: Claim
    a: str
    b: str
    values_a: np.ndarray  # the metric per trial (raw)
    values_b: np.ndarray
    mean_a: float = math.nan
    ci_a: tuple[float, float] = (math.nan, math.nan)
    mean_b: float = math.nan
    ci_b: tuple[float, float] = (math.nan, math.nan)
    diff: float = math.nan  # of the judged quantity (|x - target| for closer), A - B
    ci_diff: tuple[float, float] = (math.nan, math.nan)
    p_better: float = math.nan  # P(A better than B), U / (m n)
    verdict: str = "not testable"
    seeds_needed: int | None = None
    confounds: list[str] = field(default_factory=list)


def sign(claim: Claim) -> float:
    """+1 when a larger judged quantity is better, -1 when smaller is (lower, fewer, closer)."""
    return 1.0 if claim.better == "higher" else -1.0


def judged(claim: Claim, x: np.ndarray) -> np.ndarray:
    return np.abs(x - claim.target) if claim.better == "closer" else x


def bootstrap_ci(*samples: np.ndarray) -> tuple[float, float]:
    """95% percentile-bootstrap interval of mean(x) for one sample (n >= 2), of mean(a) - mean(b) for two."""
    def mean_or_difference(*xs: np.ndarray, axis: int) -> np.ndarray:
        means = [np.mean(x, axis=axis) for x in xs]
        return means[0] - means[1] if len(means) == 2 else means[0]

    res = stats.bootstrap(samples, mean_or_difference, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                          method="percentile", vectorized=True, rng=np.random.default_rng(SEED))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def prob_better(a: np.ndarray, b: np.ndarray) -> float:
    """P(a random A beats a random B), larger = better: Mann-Whitney U / (m n)."""
    return float(stats.mannwhitneyu(a, b).statistic) / (len(a) * len(b))


def seeds_to_decide(diff: float, spread: float, paired: bool) -> int | None:
    """Seeds per group for a 95% interval to exclude 0 with 80% power, at the observed effect."""
    if not np.isfinite(diff) or not np.isfinite(spread) or diff == 0:
        return None
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2) + POWER_Z
    return max(2, math.ceil((1 if paired else 2) * (z * spread / abs(diff)) ** 2))


# ----------------------------------------------------------------------------- trials


def _matches(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool) and isinstance(value, (int, float)):
        return math.isclose(float(value), float(wanted), rel_tol=1e-9, abs_tol=1e-12)
    return str(value) == str(wanted)


def select(best: pd.DataFrame, filters: dict[str, Any]) -> pd.DataFrame:
    """The trials whose logged params equal every filter (searched key: value)."""
    mask = pd.Series(True, index=best.index)
    for key, wanted in filters.items():
        col = best.get(PARAM_PREFIX + key)
        mask &= col.map(lambda v: _matches(v, wanted)) if col is not None else False
    return best[mask]


def values(trials: pd.DataFrame, metric: str) -> np.ndarray:
    """The metric per trial with a value (NaN-free); `diverged` is 1 for a trial that diverged."""
    if metric == "diverged":
        done = trials[trials["status"].isin(("completed", "stopped early", "diverged"))]
        flag = done["status"].eq("diverged")
        if "diverged" in done:
            flag |= pd.to_numeric(done["diverged"], errors="coerce").fillna(0).gt(0)
        return flag.astype(float).to_numpy()
    if metric not in trials:
        return np.array([])
    return pd.to_numeric(trials[metric], errors="coerce").dropna().to_numpy(float)


def confounds(a: pd.DataFrame, b: pd.DataFrame, compared: set[str]) -> list[str]:
    """`key: A's values vs B's values` for every logged setting that differs between the groups."""
    out = []
    for col in [c for c in a.columns if c.startswith(PARAM_PREFIX)]:
        key = col[len(PARAM_PREFIX):]
        if key in compared or key in NOT_COMPARED:
            continue
        va = sorted({str(v) for v in a[col]})
        vb = sorted({str(v) for v in b.get(col, pd.Series(dtype=object))})
        if va != vb:
            out.append(f"{key}: {', '.join(va)} vs {', '.join(vb)}")
    return out


# ----------------------------------------------------------------------------- verdicts


def judge(pair: Pair, paired: bool = False) -> Pair:
    """Fill in a pair's statistics and verdict from its raw values."""
    c, xa, xb = pair.claim, pair.values_a, pair.values_b
    pair.mean_a = float(np.mean(xa)) if len(xa) else math.nan
    pair.mean_b = float(np.mean(xb)) if len(xb) else math.nan
    if len(xa) < 2 or len(xb) < 2:
        pair.verdict = "not testable"
        return pair
    pair.ci_a, pair.ci_b = bootstrap_ci(xa), bootstrap_ci(xb)
    ja, jb = judged(c, xa), judged(c, xb)
    s = sign(c)
    if paired:
        d = ja - jb
        pair.diff, pair.ci_diff = float(np.mean(d)), bootstrap_ci(d)
        spread = float(np.std(d, ddof=1))
    else:
        pair.diff, pair.ci_diff = float(np.mean(ja) - np.mean(jb)), bootstrap_ci(ja, jb)
        spread = math.sqrt((np.var(ja, ddof=1) + np.var(jb, ddof=1)) / 2)
    pair.p_better = prob_better(s * ja, s * jb)
    lo, hi = pair.ci_diff
    if s * lo > 0 and s * hi > 0:
        pair.verdict = "holds"
    elif s * lo < 0 and s * hi < 0:
        pair.verdict = "contradicted"
    else:
        pair.verdict = "inconclusive"
        pair.seeds_needed = seeds_to_decide(pair.diff, spread, paired)
    return pair


def claim_pairs(claim: Claim, best: pd.DataFrame) -> list[Pair]:
    """Every comparison a claim makes, judged."""
    scope = select(best, claim.where)
    if claim.baseline:
        twin = bicubic_twin(claim.metric)
        both = scope.dropna(subset=[claim.metric, twin]) if {claim.metric, twin} <= set(scope) else scope.iloc[0:0]
        pair = Pair(claim, "SR", claim.baseline, values(both, claim.metric), values(both, twin))
        return [judge(pair, paired=True)]
    compared = {k for _, f in claim.groups for k in f} | set(claim.where)
    (label_a, filters_a), others = claim.groups[0], claim.groups[1:]
    trials_a = select(scope, filters_a)
    pairs = []
    for label_b, filters_b in others:
        trials_b = select(scope, filters_b)
        pair = Pair(claim, label_a, label_b, values(trials_a, claim.metric), values(trials_b, claim.metric))
        pair.confounds = confounds(trials_a, trials_b, compared)
        pairs.append(judge(pair))
    return pairs


def overall(pairs: list[Pair]) -> str:
    verdicts = {p.verdict for p in pairs}
    for v in ("not testable", "contradicted"):
        if v in verdicts:
            return v
    return "holds" if verdicts == {"holds"} else "inconclusive"


def judge_claims(claims: tuple[Claim, ...], best: pd.DataFrame) -> list[tuple[Claim, str, list[Pair]]]:
    """(claim, its verdict, its pairs) for every claim, in spec order."""
    judged_pairs = [(claim, claim_pairs(claim, best)) for claim in claims]
    return [(claim, overall(pairs), pairs) for claim, pairs in judged_pairs]


# ----------------------------------------------------------------------------- display


def fmt(metric: str, x: float) -> str:
    """A value at the metric's precision: PSNR 2 decimals, SSIM 4, HF and the rest 3."""
    if x is None or not np.isfinite(x):
        return "—"
    digits = 2 if metric.endswith("psnr") or metric.startswith("gan_psnr") else 4 if metric.endswith("ssim") else 3
    return f"{x:.{digits}f}"


def _quantity(claim: Claim) -> str:
    if claim.better == "closer":
        return f"|{claim.metric} − {claim.target:g}|"
    return "divergence rate" if claim.metric == "diverged" else claim.metric


def verdict_table(results: list[tuple[Claim, str, list[Pair]]]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per comparison, the claim's overall verdict on its first row."""
    header = ["claim", "verdict", "A vs B", "judged", "n", "mean A [95% CI]", "mean B [95% CI]",
              "A − B [95% CI]", "P(A better)", "pair verdict", "seeds to decide", "other differences"]
    rows = []
    for claim, verdict, pairs in results:
        for i, p in enumerate(pairs):
            m = claim.metric
            ci = lambda lo_hi: f" [{fmt(m, lo_hi[0])}, {fmt(m, lo_hi[1])}]" if np.isfinite(lo_hi[0]) else ""
            need = "" if p.verdict != "inconclusive" else (
                f"~{p.seeds_needed} per group" if p.seeds_needed else "no difference seen")
            rows.append([
                f"`{claim.name}`" if i == 0 else "", f"**{verdict}**" if i == 0 else "", f"{p.a} vs {p.b}",
                (_quantity(claim) + f" ({claim.better})") if i == 0 else "",
                f"{len(p.values_a)} / {len(p.values_b)}",
                fmt(m, p.mean_a) + ci(p.ci_a), fmt(m, p.mean_b) + ci(p.ci_b),
                fmt(m, p.diff) + ci(p.ci_diff), "—" if not np.isfinite(p.p_better) else f"{p.p_better:.2f}",
                p.verdict, need, "; ".join(p.confounds) if p.confounds else "none"])
    return header, rows

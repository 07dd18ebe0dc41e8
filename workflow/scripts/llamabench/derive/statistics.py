"""Statistics that survive a noisy machine, as pure functions of numbers (no tables, no files).

The repetitions llama-bench runs seconds apart cannot see a machine drifting
over minutes; interleaved rounds can. So everything here is over a cell's
**round means**:

- a t-based 95 % confidence interval of the mean (with a handful of rounds a
  bootstrap is far too narrow) and a 95 % prediction interval for a future
  round's mean; the coefficient of variation;
- a paired comparison of two cells by round (the same drift hit both): a
  one-sample t-test on the log of their ratios, the ratio of means with its CI;
- the Benjamini-Hochberg correction over every comparison of a run, and the
  verdict it supports.

With one round there is no spread over time: intervals are empty and nothing
is called significant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as scistats

NO_DIFFERENCE = "no significant difference"
# Verdicts on a quantity where one direction is better (tokens/s up, latency down), and on one where neither is
# (a measured TTFT against its estimate).
IMPROVED, REGRESSED = "improved", "regressed"
HIGHER, LOWER = "higher", "lower"


def interval(values: Sequence[float], prediction: bool = False) -> tuple[float | None, float | None]:
    """95 % t-interval of the mean (or, with ``prediction``, for one future round's mean)."""
    n = len(values)
    if n < 2:
        return None, None
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    half = scistats.t.ppf(0.975, n - 1) * sd * (math.sqrt(1 + 1 / n) if prediction else 1 / math.sqrt(n))
    return mean - half, mean + half


def cv(values: Sequence[float]) -> float | None:
    """Coefficient of variation (n - 1), None for fewer than two values or a zero mean."""
    mean = float(np.mean(values)) if len(values) else 0.0
    return float(np.std(values, ddof=1) / mean) if len(values) > 1 and mean else None


def paired(baseline: Sequence[float], candidate: Sequence[float]) -> dict[str, Any]:
    """Candidate against baseline, paired by round: the ratio of means, its 95 % CI and the t-test's p on the
    log ratios; ``note`` says why a part is missing."""
    a, b = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    if len(a) == 0:
        return {"note": "no round measured both"}
    found: dict[str, Any] = {"ratio": float(b.mean() / a.mean())}
    if len(a) < 2:
        return {**found, "note": "one paired round: no test possible"}
    logs = np.log(b / a)
    low, high = interval(list(logs))
    if np.ptp(logs) == 0:  # no spread at all (identical copies): the t statistic is undefined
        p_value = 1.0 if logs[0] == 0 else 0.0
    else:
        p_value = float(scistats.ttest_1samp(logs, 0.0).pvalue)
    return {**found, "ratio_ci_low": math.exp(low), "ratio_ci_high": math.exp(high), "p_value": p_value}


def adjust(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values, in the given order."""
    return [float(p) for p in scistats.false_discovery_control(np.asarray(p_values, dtype=float))] if len(
        p_values) else []


def verdict(p_adjusted: float | None, ratio: float | None, alpha: float, note: str | None = None,
            better: str | None = "higher") -> str:
    """improved / regressed where the corrected test supports it (``better``: whether a higher or a lower
    candidate is the better one; None: neither, and the verdict says higher or lower), else no significant
    difference, else why nothing was tested."""
    if p_adjusted is None or math.isnan(p_adjusted):
        return note or "not tested"
    if p_adjusted >= alpha:
        return NO_DIFFERENCE
    if better is None:
        return HIGHER if ratio > 1 else LOWER
    return IMPROVED if (ratio > 1) == (better == "higher") else REGRESSED

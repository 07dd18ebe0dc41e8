"""Statistics that survive a noisy machine, as pure functions of numbers (no tables, no files).

The repetitions llama-bench runs seconds apart cannot see a machine drifting
over minutes; interleaved rounds can. So everything here is over a cell's
**round means**:

- a t-based 95 % confidence interval of the mean (with a handful of rounds a
  bootstrap is far too narrow) and a 95 % prediction interval for a future
  round's mean; the coefficient of variation;
- a paired comparison of two cells by round (the same drift hit both): a
  one-sample t-test on the log of their ratios, the ratio of geometric means
  with its CI;
- the Benjamini-Hochberg correction over every comparison of a run, and the
  verdict it supports.

Times, speeds, rates and ratios are positive and vary multiplicatively (a
machine that slows down scales every time by one factor): their intervals are
taken on the log scale (log_interval) and the mean beside them is the geometric
mean, so no bound is ever at or below 0 and the mean always lies inside its
interval. On three TTFTs of 560, 680 and 900 ms a linear t-interval predicts the
next round between -143 and 1570 ms; on the logs, between 214 and 2289 ms.
``interval`` stays linear, for quantities that can be zero or negative and for
logs themselves.

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
    """95 % t-interval of the mean (or, with ``prediction``, for one future round's mean) on the linear scale:
    for logs, and for quantities that can be zero or negative; a positive quantity takes log_interval."""
    if len(values) < 2:
        return None, None
    mean, half = float(np.mean(values)), _half_width(values, prediction)
    return mean - half, mean + half


def _half_width(values: Sequence[float], prediction: bool) -> float:
    """Half the 95 % t-interval of the values' mean, or with ``prediction`` of one future value (two or more)."""
    n, sd = len(values), float(np.std(values, ddof=1))
    return float(scistats.t.ppf(0.975, n - 1)) * sd * (math.sqrt(1 + 1 / n) if prediction else 1 / math.sqrt(n))


def _positive(values: Sequence[float]) -> np.ndarray | None:
    """A positive quantity's values, or None where one is at or below 0 or missing: it has no log, and a time,
    speed or rate that is not positive is a broken measurement, which gets no mean or interval rather than a
    wrong one (the run goes on; the cell's own record says what broke)."""
    found = np.asarray(values, dtype=float)
    return None if (found <= 0).any() or np.isnan(found).any() else found


def geometric_mean(values: Sequence[float]) -> float | None:
    """exp of the mean of the logs: the centre of log_interval (None for no values). Values all alike are their
    own mean exactly: exp of a log moves most numbers by a rounding error, and a single round's value or a
    capacity that is one of the rates tried should read back as itself."""
    found = _positive(values)
    if found is None or not len(found):
        return None
    return float(found[0]) if np.ptp(found) == 0 else math.exp(float(np.mean(np.log(found))))


def log_interval(values: Sequence[float], prediction: bool = False) -> tuple[float | None, float | None]:
    """interval() of a positive quantity, taken on its logs and brought back: the geometric mean divided and
    multiplied by exp of the half width, so both bounds are above 0 and the mean lies between them, exactly."""
    found = _positive(values)
    if found is None or len(found) < 2:
        return None, None
    centre, factor = geometric_mean(found), math.exp(_half_width(list(np.log(found)), prediction))
    return centre / factor, centre * factor


def cv(values: Sequence[float]) -> float | None:
    """Coefficient of variation (sample sd over the arithmetic mean, n - 1), None for fewer than two values or a
    zero mean. It stays arithmetic: it only flags noisy cells against ``benchmark.noisy_cv``, bounds nothing,
    and for the spreads seen (a few %) it equals the log-scale sd to within a few % of itself."""
    mean = float(np.mean(values)) if len(values) else 0.0
    return float(np.std(values, ddof=1) / mean) if len(values) > 1 and mean else None


def over_rounds(values: Sequence[float]) -> dict[str, float | None]:
    """A positive quantity over its rounds: the geometric mean, its 95 % CI, the 95 % prediction interval for a
    future round (both on the log scale) and the cv."""
    ci, pi = log_interval(values), log_interval(values, prediction=True)
    return {"mean": geometric_mean(values), "ci_low": ci[0], "ci_high": ci[1], "pi_low": pi[0], "pi_high": pi[1],
            "cv": cv(values)}


def paired(baseline: Sequence[float], candidate: Sequence[float]) -> dict[str, Any]:
    """Candidate against baseline (positive values), paired by round: the ratio of geometric means (exp of the
    mean log ratio), its 95 % CI and the t-test's p, all three on the log ratios; ``note`` says why a part is
    missing."""
    if len(baseline) == 0:
        return {"note": "no round measured both"}
    a, b = _positive(baseline), _positive(candidate)
    if a is None or b is None:
        return {"note": "a round's value is not positive: no ratio"}
    ratios = np.log(b / a)  # one log per pair: a constant ratio stays exact
    found: dict[str, Any] = {"ratio": math.exp(float(ratios.mean()))}
    if len(ratios) < 2:
        return {**found, "note": "one paired round: no test possible"}
    low, high = interval(list(ratios))
    if np.ptp(ratios) == 0:  # no spread at all (identical copies): the t statistic is undefined
        p_value = 1.0 if ratios[0] == 0 else 0.0
    else:
        p_value = float(scistats.ttest_1samp(ratios, 0.0).pvalue)
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

"""Change points in a history study's series, each confirmed (or not) by the project's paired test.

The series is one value per commit: the mean over rounds of the log tokens/s
(every commit measured in every round, in a seeded order, so a round's drift
touches all of them alike). ruptures' PELT on the L2 cost finds where the mean
shifts; its penalty is BIC's for a known variance, ``2 σ² log n`` per change,
with σ² the variance of a commit's mean estimated from the rounds after
removing each round's shift (the residuals of commit + round effects) - so the
noise the measurement had decides what is a change - unless that is below the
smallest change that counts (``min_change``, 3 %): the rounds' noise on this VM
was small enough for PELT to cut at a 1 % shift between two commits that
differ in a document only, so the penalty is at least ``log(1 + min_change)²``.
(Apache Otava's E-divisive cannot be installed beside this project's numpy and
scipy; ruptures leaves them free.)

A change found is only a candidate: the rounds of the segment before and of the
segment after are compared paired by round (statistics.paired on their
geometric means), the p-values corrected together (Benjamini-Hochberg), and only
a change significant at ``alpha`` and at least ``min_change`` is *confirmed*. A confirmed slowdown can seed
a bisect between its two commits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from llamabench.derive import statistics

SLOWER, FASTER = "slower", "faster"
NO_CHANGE = "no confirmed change"  # a history's answer where no change point was confirmed
# A change holds for at least two commits of the series: one commit alone off the line is a blip. Measured: a
# documentation-only commit (#10 of tests/data/history-series-*.json) ran 5-6 % slower than its neighbours in a
# bisect and again in a history - its binary's layout, not a change anyone made. The price: a change at the
# series' first or last commit is not found (its endpoint's bisect is).
MIN_SEGMENT = 2


def residual_variance(matrix: np.ndarray) -> float | None:
    """The variance of one commit's mean over its rounds, from a commits x rounds table of log values with the
    rounds' shifts removed (two-way residuals); None with fewer than two rounds or commits."""
    n, r = matrix.shape
    if n < 2 or r < 2:
        return None
    resid = matrix - matrix.mean(axis=1, keepdims=True) - matrix.mean(axis=0, keepdims=True) + matrix.mean()
    return float((resid ** 2).sum() / ((n - 1) * (r - 1)) / r)


def change_points(series: Sequence[float], variance: float, min_change: float) -> list[int]:
    """The indices where a new segment starts (ruptures PELT, L2 cost; the penalty BIC's for a known variance, or
    the square of the smallest change that counts where that is larger)."""
    import ruptures

    signal = np.asarray(series, dtype=float).reshape(-1, 1)
    n = len(signal)
    if n < 2 * MIN_SEGMENT:
        return []
    penalty = max(2 * variance * math.log(n), math.log1p(min_change) ** 2, 1e-12)
    found = ruptures.Pelt(model="l2", min_size=MIN_SEGMENT, jump=1).fit(signal).predict(pen=penalty)
    return [int(i) for i in found[:-1]]


def detect(matrix: np.ndarray, alpha: float, min_change: float) -> dict[str, Any]:
    """The change points of a commits x rounds table of log tokens/s (every commit measured in every round), each
    with its paired test of the segment before against the segment after; confirmed when the corrected test is
    significant and the change at least ``min_change``."""
    variance = residual_variance(matrix)
    if variance is None:
        return {"variance": None, "changes": [], "note": "fewer than two commits or rounds: nothing to test"}
    means = matrix.mean(axis=1)
    found = change_points(list(means), variance, min_change)
    edges = [0, *found, len(means)]
    changes = []
    for i, at in enumerate(found):
        before, after = matrix[edges[i]:at].mean(axis=0), matrix[at:edges[i + 2]].mean(axis=0)
        test = statistics.paired(list(np.exp(before)), list(np.exp(after)))
        changes.append({"at": at, "segment_before": [edges[i], at - 1], "segment_after": [at, edges[i + 2] - 1],
                        **test})
    adjusted = statistics.adjust([c.get("p_value", 1.0) for c in changes])
    for change, p in zip(changes, adjusted):
        change["p_adjusted"] = p
        change["confirmed"] = bool(p < alpha and abs(math.log(change["ratio"])) >= math.log1p(min_change))
        change["direction"] = SLOWER if change["ratio"] < 1 else FASTER
    return {"variance": variance, "sigma": math.sqrt(variance), "changes": changes}


def table(obs: Mapping[str, Mapping[int, float]], commits: Sequence[str], rounds: int,
          ) -> tuple[list[str], list[int], np.ndarray]:
    """The commits measured in some round, the rounds every one of them has (a round disturbed or failed on one
    commit is left out for all: the table stays paired), and their commits x rounds table."""
    kept = [c for c in commits if obs.get(c)]
    used = [r for r in range(1, rounds + 1) if all(r in obs[c] for c in kept)]
    return kept, used, np.array([[obs[c][r] for r in used] for c in kept]).reshape(len(kept), len(used))

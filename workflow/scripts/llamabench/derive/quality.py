"""What a setting costs in output quality, from llama-perplexity's cumulative rows: values with intervals.

llama-perplexity prints, after each chunk, the running mean over every token scored so far, and its ± is a
per-token standard error. Tokens within a chunk are correlated, so that ± is too narrow: the intervals here are
over chunks. Each chunk scores the same number of tokens (the second half of its context), so chunk i's own mean
is ``i·m_i - (i-1)·m_(i-1)`` of the cumulative means m.

The printed PPL(Q)/PPL(base) is biased upward: the base file clamps log-probabilities at 16 below the maximum,
so PPL(base) read back from it comes out low (the reference against itself prints 1.0003 here). The ratio here
takes the reference's own perplexity, printed by the run that wrote the base file, chunk by chunk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from llamabench.core import records
from llamabench.derive import statistics


def per_chunk(cumulative: Sequence[float]) -> list[float]:
    """Each chunk's own mean from the running means after each chunk."""
    return [(i + 1) * value - i * (cumulative[i - 1] if i else 0.0) for i, value in enumerate(cumulative)]


def _log_ppl_per_chunk(cumulative_ppl: Sequence[float]) -> list[float]:
    """Each chunk's mean negative log-likelihood (the log of its own perplexity)."""
    return per_chunk([math.log(value) for value in cumulative_ppl])


def cost(candidate: Mapping[str, Any], reference_ppl: Sequence[float]) -> dict[str, Any]:
    """A candidate's quality cost against the reference: mean KLD and the same-top-token share with 95 %
    intervals over chunks, its p99 and largest KLD as printed, and the perplexity ratio with its interval over
    chunks' log-ratios (candidate's PPL over the reference's, both from their own runs: unbiased)."""
    rows = candidate["rows"]
    kld = per_chunk([row["kld"] for row in rows])
    same = per_chunk([row["same_top_pct"] / 100 for row in rows])
    log_ratio = [q - r for q, r in zip(_log_ppl_per_chunk([row["ppl"] for row in rows]),
                                       _log_ppl_per_chunk(reference_ppl), strict=True)]
    kld_low, kld_high = statistics.interval(kld)
    same_low, same_high = statistics.interval(same)
    ratio_low, ratio_high = statistics.interval(log_ratio)
    return {
        "kld_mean": candidate["kld_mean"],
        "kld_ci_low": None if kld_low is None else max(0.0, kld_low),
        "kld_ci_high": kld_high,
        "kld_p99": candidate["kld_p99"],
        "kld_max": candidate["kld_max"],
        "same_top": candidate["same_top"] / 100,
        "same_top_ci_low": None if same_low is None else max(0.0, same_low),
        "same_top_ci_high": None if same_high is None else min(1.0, same_high),
        "ppl": candidate["ppl_q"],
        "reference_ppl": reference_ppl[-1],
        "ppl_ratio": candidate["ppl_q"] / reference_ppl[-1],
        "ppl_ratio_ci_low": None if ratio_low is None else math.exp(ratio_low),
        "ppl_ratio_ci_high": None if ratio_high is None else math.exp(ratio_high),
        "chunk_kld": kld,
    }


def within(row: Mapping[str, Any], budget: Mapping[str, Any]) -> str | None:
    """Why a quality cost exceeds a budget (``max_kld`` on the KLD interval's upper bound, ``min_same_top`` on
    the same-top share's lower bound: a cost is within only where its interval is), or None where it is within."""
    max_kld, min_same = budget.get("max_kld"), budget.get("min_same_top")
    high = _first(row.get("kld_ci_high"), row.get("kld_mean"))
    if max_kld is not None and high is not None and high > max_kld:
        return f"KLD up to {high:.4g} (95 % CI upper bound) exceeds the quality budget max_kld {max_kld:g}"
    low = _first(row.get("same_top_ci_low"), row.get("same_top"))
    if min_same is not None and low is not None and low < min_same:
        return f"the top token is unchanged in as few as {low:.1%} (95 % CI lower bound), under the quality " \
               f"budget min_same_top {min_same:.1%}"
    return None


def _first(*values: Any) -> float | None:
    return next((float(v) for v in values if records.present(v)), None)


def pareto(points: Sequence[tuple[float | None, float | None]]) -> list[bool]:
    """For (quality cost, speed) points - lower cost and higher speed better - whether each is Pareto-efficient:
    no other point is at least as good in both and better in one. A point missing either is not."""
    efficient = []
    for i, (c, s) in enumerate(points):
        if not records.present(c) or not records.present(s):
            efficient.append(False)
            continue
        dominated = any(j != i and records.present(oc) and records.present(os_)
                        and oc <= c and os_ >= s and (oc < c or os_ > s) for j, (oc, os_) in enumerate(points))
        efficient.append(not dominated)
    return efficient

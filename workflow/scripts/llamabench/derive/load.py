"""What a load level says, and how a sweep finds its levels and its capacity: pure functions of recorded requests.

A level is one serving cell at an offered rate. Its latency percentiles, its
goodput (requests per second whose own TTFT, mean inter-token latency and
end-to-end latency are all within the objectives' limits, over the time from
the first send to the last completion), and whether it is *saturated*: a
server that cannot keep up queues requests, so both the number in flight at
each arrival and the TTFT rise over the window. Each rise is a one-sided
Kendall trend test against the send time (the Mann-Kendall test), and both must
be significant: a fixed threshold would depend on the model and the machine. The
callers correct ``alpha`` for the levels tested together (Bonferroni over a
round's levels, or over the pilot's most levels), so a false alarm below the
knee, which would cut a round's capacity short, stays as rare as ``alpha``.

A level meets the objectives when each objective percentile is within its limit
and it is not saturated. The capacity of a round is the highest level below the
first one that does not (a level further up that passes by chance does not
count); across rounds it gets the t-interval of derive/statistics.py.

The pilot climbs from a light load by a factor until a level is saturated, then
halves (geometrically) the gap between the last level meeting the objectives
and the next until they are within ``refine`` of each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as scistats

from llamabench.core import load
from llamabench.derive import statistics

QUANTILES = {"p50": 50, "p90": 90, "p99": 99}


def request_values(request: Mapping[str, Any]) -> dict[str, float]:
    """One request's own values of the objective metrics: TTFT, mean inter-token latency, end-to-end."""
    gaps = request["itl_ms"]
    return {"ttft_ms": request["ttft_ms"], "itl_ms": float(np.mean(gaps)) if gaps else 0.0,
            "e2e_ms": request["e2e_ms"]}


def in_flight(requests: Sequence[Mapping[str, Any]]) -> list[int]:
    """At each request's send (in send order), how many requests were in flight, itself included."""
    ordered = sorted(requests, key=lambda r: r["sent_s"])
    return [sum(1 for other in ordered if other["sent_s"] <= r["sent_s"] < other["done_s"]) for r in ordered]


def saturation(requests: Sequence[Mapping[str, Any]], alpha: float) -> dict[str, Any]:
    """Whether in-flight requests and TTFT both rise over the level's window (one-sided Kendall tests at
    ``alpha``); with fewer than 4 requests nothing can be said (not saturated)."""
    ordered = sorted(requests, key=lambda r: r["sent_s"])
    return _saturation(ordered, in_flight(ordered), alpha)


def _saturation(ordered: Sequence[Mapping[str, Any]], flights: Sequence[int], alpha: float) -> dict[str, Any]:
    """saturation() of requests in send order, with their in-flight counts."""
    if len(ordered) < 4:
        return {"saturated": False, "ttft_tau": None, "ttft_p": None, "in_flight_tau": None, "in_flight_p": None}
    sent = [r["sent_s"] for r in ordered]
    found: dict[str, Any] = {}
    for name, values in (("ttft", [r["ttft_ms"] for r in ordered]), ("in_flight", list(flights))):
        if np.ptp(values) == 0:  # constant: no trend (Kendall's tau is undefined)
            found[f"{name}_tau"], found[f"{name}_p"] = 0.0, 1.0
            continue
        test = scistats.kendalltau(sent, values, alternative="greater")
        found[f"{name}_tau"], found[f"{name}_p"] = round(float(test.statistic), 4), float(test.pvalue)
    return {"saturated": bool(found["ttft_p"] < alpha and found["in_flight_p"] < alpha), **found}


def level_metrics(requests: Sequence[Mapping[str, Any]], objectives: Mapping[str, Mapping[str, float]],
                  alpha: float) -> dict[str, Any]:
    """A level's percentiles, goodput, saturation and verdict against the objectives."""
    ordered = sorted(requests, key=lambda r: r["sent_s"])
    flights = in_flight(ordered)
    values = [request_values(r) for r in ordered]
    found: dict[str, Any] = {}
    for metric in ("ttft_ms", "itl_ms", "e2e_ms"):
        column = [v[metric] for v in values]
        for name, q in QUANTILES.items():
            found[f"{metric[:-3]}_{name}_ms"] = float(np.percentile(column, q))
    limits = load.limits(objectives)
    good = sum(all(v[m] <= limit for m, limit in limits.items()) for v in values)
    sends = [r["sent_s"] for r in ordered]
    window = max(r["done_s"] for r in ordered) - sends[0]
    missed = [f"{metric[:-3]} {name} {found[f'{metric[:-3]}_{name}_ms']:.0f} ms > {limit:g} ms"
              for metric, by_q in objectives.items() for name, limit in by_q.items()
              if found[f"{metric[:-3]}_{name}_ms"] > limit]
    sat = _saturation(ordered, flights, alpha)
    alone = [r["ttft_ms"] for r, n in zip(ordered, flights) if n == 1]
    if sat["saturated"]:
        missed.append("saturated: in-flight requests and TTFT rise over the window")
    return {
        **found,
        "requests": len(requests),
        "achieved_rate": (len(sends) - 1) / (sends[-1] - sends[0]) if sends[-1] > sends[0] else None,
        "completed_rate": len(requests) / window if window > 0 else None,
        "good_requests": good,
        "goodput": good / window if window > 0 else 0.0,
        "peak_in_flight": max(flights),
        # the requests that found the server idle: what a light load costs against one request at a time
        "alone_share": len(alone) / len(requests),
        "ttft_p50_alone_ms": float(np.median(alone)) if alone else None,
        **sat,
        "meets": not missed,
        "missed": missed,
    }


def capacity(levels: Mapping[float, Mapping[str, Any]]) -> dict[str, Any]:
    """The highest rate below the first level that misses the objectives (0 if the lowest misses them);
    ``bounded`` says whether a missing level was found above it (else the capacity is at least that)."""
    best = 0.0
    for rate in sorted(levels):
        if not levels[rate]["meets"]:
            return {"capacity": best, "bounded": True, "first_missed": rate}
        best = rate
    return {"capacity": best, "bounded": False, "first_missed": None}


def across_rounds(capacities: Sequence[float]) -> dict[str, Any]:
    """The capacity over rounds: its mean, the 95 % t-interval (a capacity is never below 0), and the largest
    relative deviation of a round from the mean."""
    values = [float(v) for v in capacities]
    mean = float(np.mean(values)) if values else None
    low, high = statistics.interval(values)
    low = None if low is None else max(0.0, low)
    spread = max(abs(v - mean) / mean for v in values) if mean else None
    return {"capacity_mean": mean, "capacity_ci_low": low, "capacity_ci_high": high, "capacity_rounds": values,
            "capacity_max_deviation": spread}


def pilot(measure: Callable[[float], Mapping[str, Any]], start: float, factor: float, refine: float,
          max_levels: int) -> dict[str, Any]:
    """Levels measured by ``measure(rate)`` (its level_metrics): up by ``factor`` from ``start`` until a level is
    saturated, then the gap above the last level meeting the objectives refined geometrically until the two
    rates are within ``refine``; at most ``max_levels``. Returns every level tried, in order, and why it ended."""
    tried: dict[float, Mapping[str, Any]] = {}

    def at(rate: float) -> Mapping[str, Any]:
        rate = load.level_rate(rate)
        if rate not in tried:
            tried[rate] = measure(rate)
        return tried[rate]

    rate, ended = start, "max_levels"
    while len(tried) < max_levels:
        if at(rate)["saturated"]:
            ended = "saturated"
            break
        rate *= factor
    while len(tried) < max_levels:
        found = capacity(tried)
        if not found["bounded"]:
            break
        low = found["capacity"] or min(tried) / factor
        high = found["first_missed"]
        if high / low <= 1 + refine:
            break
        middle = load.level_rate(math.sqrt(low * high))
        if middle in tried or middle in (low, high):
            break
        at(middle)
    return {"levels": [{"rate": r, **m} for r, m in tried.items()], "ended": ended,
            "chosen": sorted(tried), **capacity(tried)}

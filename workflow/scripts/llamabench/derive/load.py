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
knee, which would cut a round's capacity short, stays rare: as rare as ``alpha``
were a level's requests independent (on a short window they are not: see the
pilot below).

A level meets the objectives when each objective percentile is within its limit
and it is not saturated. The capacity of a round is the highest level below the
first one that does not (a level further up that passes by chance does not
count); across rounds it gets its geometric mean and the log-scale t-interval of
derive/statistics.py.

The pilot climbs from a light load by a factor until a saturation call is
*confirmed*, then halves (geometrically) the gap between the last level meeting
the objectives and the next until they are within ``refine`` of each other. A
call is judged by the levels above it: a queue that grows at one rate grows at
any higher one, so a saturated level is a false alarm when a level tried above
it is not saturated, and confirmed when every level above it is saturated and
there is at least one (the top two of a climb confirm each other). On a few
requests the Kendall tests' false alarms are far more frequent than ``alpha``
(a level's requests are not independent: a cluster of arrivals lifts the
in-flight counts and the TTFT of several in a row), and one at a light level
would end the climb there and put every level of the sweep far below the knee;
two in a row are about its square (docs/serving.md measures both). The pilot's
capacity, which places the refined levels, is that of the judged levels: a
false alarm's verdict is its percentiles' alone. A percentile over its limit is
not undone by a level above that passes, since the level's own users saw it.
Each round's capacity (the answer) is taken over that round's levels judged the
same way: an A/A sweep of 12 requests a level called a light level of one round
saturated (1.62 requests/s, against 4.6 in the other rounds) and put that round's
capacity at 0, which made the two identical builds' intervals 0-7.9 and 0.7-14.6.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as scistats

from llamabench.core import load
from llamabench.derive import sessions, statistics

QUANTILES = {"p50": 50, "p90": 90, "p99": 99}
# A saturated level's entry in ``missed``: what a false alarm's verdict leaves out.
SATURATED = "saturated: in-flight requests and TTFT rise over the window"


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
    verdicts = [all(v[m] <= limit for m, limit in limits.items()) for v in values]
    good = sum(verdicts)
    sends = [r["sent_s"] for r in ordered]
    window = max(r["done_s"] for r in ordered) - sends[0]
    waits = [r["wait_ms"] for r in ordered if r.get("wait_ms") is not None]
    missed = [f"{metric[:-3]} {name} {found[f'{metric[:-3]}_{name}_ms']:.0f} ms > {limit:g} ms"
              for metric, by_q in objectives.items() for name, limit in by_q.items()
              if found[f"{metric[:-3]}_{name}_ms"] > limit]
    sat = _saturation(ordered, flights, alpha)
    alone = [r["ttft_ms"] for r, n in zip(ordered, flights) if n == 1]
    if sat["saturated"]:
        missed.append(SATURATED)
    return {
        **found,
        "requests": len(requests),
        "achieved_rate": (len(sends) - 1) / (sends[-1] - sends[0]) if sends[-1] > sends[0] else None,
        "completed_rate": len(requests) / window if window > 0 else None,
        "good_requests": good,
        "goodput": good / window if window > 0 else 0.0,
        # conversations (a lone request is one): those whose every turn met the objectives, per minute, and how
        # many were in flight on average
        "session_goodput_per_min": sessions.session_goodput(ordered, verdicts, window),
        "concurrent_sessions": sessions.concurrent(ordered),
        "wait_p90_ms": float(np.percentile(waits, 90)) if waits else None,
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
    """The capacity over rounds: its geometric mean and 95 % interval on the log scale (a rate), and the largest
    relative deviation of a round from the mean. A round whose lowest level missed has capacity 0, which has no
    log: then the arithmetic mean and the linear t-interval, floored at 0 (a capacity is never below it)."""
    values = [float(v) for v in capacities]
    if all(v > 0 for v in values):
        mean = statistics.geometric_mean(values)
        low, high = statistics.log_interval(values)
    else:
        mean = float(np.mean(values))
        low, high = statistics.interval(values)
        low = None if low is None else max(0.0, low)
    spread = max(abs(v - mean) / mean for v in values) if mean else None
    return {"capacity_mean": mean, "capacity_ci_low": low, "capacity_ci_high": high, "capacity_rounds": values,
            "capacity_max_deviation": spread}


def calls(levels: Mapping[float, Mapping[str, Any]]) -> dict[float, dict[str, Any]]:
    """A pilot's (or a round's) levels, each saturation call judged by the levels tried above it (a queue that
    grows at one rate grows at every higher one): ``false_alarm`` when one of them is not saturated; ``confirmed``
    when the level is in the topmost run of saturated levels and that run has two or more (a lone saturated top
    level is neither: unconfirmed, and still a miss). A false alarm meets the objectives when its percentiles do."""
    rates = sorted(levels)
    run = len(rates)  # the topmost run of saturated levels: rates[run:]
    while run and levels[rates[run - 1]].get("saturated"):
        run -= 1
    judged: dict[float, dict[str, Any]] = {}
    for i, rate in enumerate(rates):
        level = {**levels[rate], "confirmed": i >= run and len(rates) - run >= 2,
                 "false_alarm": bool(levels[rate].get("saturated")) and i < run}
        if level["false_alarm"]:
            level["missed"] = [m for m in level["missed"] if m != SATURATED]
            level["meets"] = not level["missed"]
        judged[rate] = level
    return judged


def pilot(measure: Callable[[float], Mapping[str, Any]], start: float, factor: float, refine: float,
          max_levels: int) -> dict[str, Any]:
    """Levels measured by ``measure(rate)`` (its level_metrics): up by ``factor`` from ``start`` until a
    saturation call is confirmed (see calls(): a false alarm is refuted by the ladder's next level, which the climb
    measures anyway; a real knee costs the one level above it), then the gap above the last level meeting the
    objectives refined geometrically until the two rates are within ``refine``; at most ``max_levels``. Returns
    every level tried, in order, judged; the false alarms; and why the climb ended: ``saturated`` (confirmed) or
    ``max_levels`` (possibly with its top level saturated, unconfirmed)."""
    tried: dict[float, Mapping[str, Any]] = {}

    def at(rate: float) -> None:
        rate = load.level_rate(rate)
        if rate not in tried:
            tried[rate] = measure(rate)

    rate, ended = start, "max_levels"
    while len(tried) < max_levels:
        at(rate)
        if any(level["confirmed"] for level in calls(tried).values()):
            ended = "saturated"
            break
        rate *= factor
    while len(tried) < max_levels:
        found = capacity(calls(tried))
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
    judged = calls(tried)
    return {"levels": [{"rate": r, **judged[r]} for r in tried], "ended": ended, "chosen": sorted(tried),
            "false_alarms": sorted(r for r, level in judged.items() if level["false_alarm"]), **capacity(judged)}

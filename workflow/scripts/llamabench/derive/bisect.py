"""A bisect's decisions: classify each probe by paired tests against both endpoints, narrow to the first bad commit.

Upstream's ``compare-commits.sh`` builds A, runs it, builds B, runs it: drift
on a busy machine then looks like a regression. Here every probe is measured
beside fresh measurements of the good and the bad endpoint, in rounds, each
round the three in a seeded order, and judged by two paired t-tests on the
log ratios (statistics.paired), one against each endpoint:

- a test *differs* where it is significant at ``alpha`` and its log ratio at least
  the change floor (:func:`change_floor`: ``min_change``, or one round's noise of
  the endpoints' own comparison in those rounds, whichever is larger);
- first the endpoints alone: bad must be slower than good by at least ``min_change``
  and differ from it, or the study ends "no regression found" (no probe is built);
  bad slower by that much but not differing gets one more round at a time, up to
  ``max_rounds``, as an inconclusive probe does, and so do endpoints paired in fewer
  rounds than ``rounds`` (the others failed or were disturbed), which end
  inconclusive rather than "no regression found" if the last round leaves them so;
- a probe is judged only where its own trio's endpoints differ: a probe measured
  beside endpoints that did not separate in its rounds can say nothing about them;
- then by the endpoint it is nearer (its position on the log scale, 0 good, 1 bad)
  where its two tests agree: *good* differs from bad, not from good, and lies
  below 0.5; *bad* the mirror; one that differs from both lies between (a
  regression in several steps) and counts for the endpoint it is nearer;
- anything else (neither differs, or the tests and the position disagree: 0.96x
  good, significantly, in a trio 0.81x apart, is not bad) is inconclusive: one more
  round at a time, up to ``max_rounds``, after which the study ends with the range
  still open.

A commit whose build failed is skipped, as ``git bisect skip`` does: the next
probe is the untested commit nearest the middle. The search ends when no
commit between the last good and the first bad is left: when skipped commits lie
between, the culprit is one of them or the bad one. Otherwise the bad one is
measured once more, beside its parent (and both endpoints), and named only where
it is slower than its parent by a change (:func:`confirms`); a search that went
wrong on the way (each probe is a test at ``alpha``: one of a dozen is a false
verdict now and then - a benchmark's harmless commit 0.80x good with p 0.005, while
the same build measured 0.98x in the run before) ends inconclusive instead, with
more rounds first, as an undecided probe gets.

Pure: states in, states out (the ``bisect_step`` checkpoint reads and writes them).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from llamabench.core.bisect import Study
from llamabench.core.status import Status
from llamabench.derive import race, statistics

Observations = Mapping[str, Mapping[int, float]]  # commit -> round -> mean log tokens/s over the study's cells

CULPRIT, NO_REGRESSION, AMBIGUOUS, INCONCLUSIVE, ENDPOINT_FAILED = (
    "culprit", "no regression found", "ambiguous", "inconclusive", "endpoint does not build")
GOOD, BAD, BETWEEN_GOOD, BETWEEN_BAD, UNDECIDED, BUILD_FAILED, CONFIRMED = (
    "good", "bad", "between (nearer good)", "between (nearer bad)", "inconclusive", Status.BUILD_FAILED.value,
    "confirmed")


def start(study: Study, commits: list[dict[str, Any]], cells: Iterable[str], metric: str,
          why_not: str | None = None) -> dict[str, Any]:
    """Step 0: the range (good first, bad last), the cells and metric compared, and the first measurement, the
    endpoints alone. ``why_not``: the study has nothing to bisect (a history without a confirmed slowdown)."""
    state = {"commits": commits, "cells": sorted(cells), "metric": metric, "lo": 0, "hi": len(commits) - 1,
             "probes": [],
             "skipped": [], "ended": False, "outcome": None, "culprit": None, "candidates": [], "sentence": None,
             "next": {"probe": 0, "target": None, "rounds": study.settings["rounds"]}}
    if why_not:
        return _end(state, NO_REGRESSION, why_not)
    if len(commits) < 2:
        return _end(state, NO_REGRESSION, "the good and the bad ref are one commit: nothing to bisect")
    return state


def advance(study: Study, previous: Mapping[str, Any], obs: Observations, failed: Iterable[int]) -> dict[str, Any]:
    """The state after the measurement ``previous`` asked for: ``obs`` holds its rounds, ``failed`` the positions
    whose build failed."""
    state = {**previous, "probes": [dict(p) for p in previous["probes"]], "skipped": list(previous["skipped"])}
    current, failed = dict(previous["next"]), set(failed)
    last = len(state["commits"]) - 1
    if failed & {0, last}:
        which = " and ".join(state["commits"][p]["commit"][:9] for p in sorted(failed & {0, last}))
        return _end(state, ENDPOINT_FAILED, f"the endpoint {which} does not build: nothing can be compared with it")
    good, bad = state["commits"][0]["commit"], state["commits"][last]["commit"]
    target = current["target"]
    if target is not None and target in failed:
        state["skipped"].append(target)
        state["probes"].append({**current, "commit": state["commits"][target]["commit"], "verdict": BUILD_FAILED})
        return _choose(state, study, current["probe"] + 1)
    rounds = range(1, current["rounds"] + 1)
    endpoints = _test(obs, good, bad, rounds)
    floor = change_floor(_log_ratios(obs, good, bad, rounds), study.settings["min_change"])
    if target is None:
        entry = {**current, "commit": None, "verdict": None, "endpoints": endpoints, "floor": floor}
        state["probes"] = [*state["probes"][:-1], entry] if state["probes"] else [entry]
        slower = endpoints.get("ratio") is not None and endpoints["ratio"] <= 1 / (1 + study.settings["min_change"])
        few = (endpoints.get("rounds") or 0) < max(2, study.settings["rounds"])
        if slower and _differs(endpoints, study.settings["alpha"], floor):
            return _choose(state, study, 1)
        if (slower or few) and current["rounds"] < study.settings["max_rounds"]:
            return {**state, "next": {**current, "rounds": current["rounds"] + 1}}
        if few:
            return _end(state, INCONCLUSIVE, _too_few(endpoints, state["metric"], current["rounds"]),
                        candidates=_open(state))
        return _end(state, NO_REGRESSION, _no_regression(endpoints, state["metric"]))
    sha = state["commits"][target]["commit"]
    if current.get("parent") is not None:
        return _confirm(state, study, current, obs, endpoints, floor)
    vs_good, vs_bad = _test(obs, good, sha, rounds), _test(obs, bad, sha, rounds)
    verdict = classify(vs_good, vs_bad, endpoints, study.settings["alpha"], floor)
    entry = {**current, "commit": sha, "verdict": verdict, "endpoints": endpoints, "vs_good": vs_good,
             "vs_bad": vs_bad, "position": _position(vs_good, endpoints), "floor": floor}
    _record(state, entry)
    if verdict == UNDECIDED:
        if current["rounds"] < study.settings["max_rounds"]:
            return {**state, "next": {**current, "rounds": current["rounds"] + 1}}
        return _end(state, INCONCLUSIVE, _inconclusive(state, entry, study.settings["alpha"]),
                    candidates=_open(state))
    if verdict in (GOOD, BETWEEN_GOOD):
        state["lo"] = target
    else:
        state["hi"] = target
    return _choose(state, study, current["probe"] + 1)


def _record(state: dict[str, Any], entry: dict[str, Any]) -> None:
    if state["probes"] and state["probes"][-1]["probe"] == entry["probe"]:
        state["probes"][-1] = entry  # more rounds of the same probe
    else:
        state["probes"].append(entry)


def _confirm(state: dict[str, Any], study: Study, current: Mapping[str, Any], obs: Observations,
             endpoints: Mapping[str, Any], floor: float) -> dict[str, Any]:
    """The end of a search: the first bad commit named where it is slower than its parent beside it, more rounds
    where not yet, "inconclusive" where not even then."""
    commits, rounds = state["commits"], range(1, current["rounds"] + 1)
    parent, culprit = commits[current["parent"]], commits[current["target"]]
    vs_parent = _test(obs, parent["commit"], culprit["commit"], rounds)
    confirmed = confirms(vs_parent, study.settings["alpha"], floor)
    _record(state, {**current, "commit": culprit["commit"], "verdict": CONFIRMED if confirmed else UNDECIDED,
                    "endpoints": endpoints, "vs_parent": vs_parent, "floor": floor})
    if confirmed:
        return _end({**state, "culprit": culprit}, CULPRIT,
                    f"the first bad commit is {culprit['commit'][:9]} \"{culprit['subject']}\" "
                    f"({state['metric']} {_ratio(vs_parent, 'its parent')} beside it)", candidates=[state["hi"]])
    if current["rounds"] < study.settings["max_rounds"]:
        return {**state, "next": {**current, "rounds": current["rounds"] + 1}}
    return _end(state, INCONCLUSIVE,
                f"inconclusive: the search ended at {culprit['commit'][:9]}, but beside its parent "
                f"{parent['commit'][:9]} it measured {_ratio(vs_parent, 'its parent')} over {vs_parent['rounds']} "
                "rounds, not slower by a change: a verdict on the way was wrong, and no commit is named",
                candidates=list(range(1, len(commits))))


def confirms(vs_parent: Mapping[str, Any], alpha: float, floor: float) -> bool:
    """Whether the commit a search ended at made the change: slower than its parent, significantly and by at least
    the change floor, in rounds of their own."""
    return _differs(vs_parent, alpha, floor) and vs_parent["ratio"] < 1


def _ratio(test: Mapping[str, Any], of: str) -> str:
    """``0.810x its parent's (p = 0.039)``."""
    p = f" (p = {test['p_value']:.2g})" if test.get("p_value") is not None else ""
    return f"{test['ratio']:.3f}x {of}'s{p}" if test.get("ratio") is not None else f"in no round paired with {of}"


def classify(vs_good: Mapping[str, Any], vs_bad: Mapping[str, Any], endpoints: Mapping[str, Any], alpha: float,
             floor: float) -> str:
    """A probe's verdict from its paired tests against the good and the bad endpoint of its trio (``floor``:
    :func:`change_floor`). Only where the trio's endpoints differ, since a probe's place between them means
    nothing otherwise; then the nearer endpoint decides, and only where both tests agree with it: on the recorded
    harmless-commit bisect a comment change was 0.961x good (p 0.048) and not different from bad, at 0.19 of
    the way from good to bad in a trio whose endpoints had not separated, and "differs from good, not from bad"
    alone had called it bad."""
    position = _position(vs_good, endpoints)
    if not _differs(endpoints, alpha, floor) or position is None:
        return UNDECIDED
    differs_good, differs_bad = _differs(vs_good, alpha, floor), _differs(vs_bad, alpha, floor)
    if differs_good and differs_bad:
        return BETWEEN_BAD if position >= 0.5 else BETWEEN_GOOD
    if differs_bad and not differs_good and position < 0.5:
        return GOOD
    if differs_good and not differs_bad and position >= 0.5:
        return BAD
    return UNDECIDED


def change_floor(log_ratios: Sequence[float], min_change: float) -> float:
    """The smallest absolute log ratio a test may call a change: ``log1p(min_change)``, or the standard deviation
    over rounds of the endpoints' log ratios (bad/good) where that is larger. ``min_change`` because a 1 % shift
    between two builds of commits that changed no compiled file was significant here, with 3 rounds of small
    noise; the noise because every test of a probe is made in the rounds of its trio, and a shift smaller than one
    round's noise of the endpoints' own comparison is what the machine did to three builds in those minutes, not a
    change (0.18 in the recorded harmless-commit bisect's last trio, where a comment change was 0.961x good)."""
    spread = float(np.std(log_ratios, ddof=1)) if len(log_ratios) > 1 else 0.0
    return max(math.log1p(min_change), spread)


def _differs(test: Mapping[str, Any], alpha: float, floor: float) -> bool:
    return test.get("p_value") is not None and test["p_value"] < alpha and abs(math.log(test["ratio"])) >= floor


def _position(vs_good: Mapping[str, Any], endpoints: Mapping[str, Any]) -> float | None:
    """Where the probe lies on the log scale from good (0) to bad (1)."""
    if not vs_good.get("ratio") or not endpoints.get("ratio") or endpoints["ratio"] == 1:
        return None
    return math.log(vs_good["ratio"]) / math.log(endpoints["ratio"])


def _log_ratios(obs: Observations, baseline: str, candidate: str, rounds: range) -> list[float]:
    """log(candidate / baseline) in each of ``rounds`` that measured both."""
    return [obs[candidate][r] - obs[baseline][r] for r in rounds if r in obs.get(baseline, {})
            and r in obs.get(candidate, {})]


def _test(obs: Observations, baseline: str, candidate: str, rounds: range) -> dict[str, Any]:
    """``candidate`` against ``baseline`` over the rounds both have: ratio of geometric means, CI, p."""
    common = [r for r in rounds if r in obs.get(baseline, {}) and r in obs.get(candidate, {})]
    found = statistics.paired([math.exp(obs[baseline][r]) for r in common],
                              [math.exp(obs[candidate][r]) for r in common])
    return {**found, "rounds": len(common)}


def _choose(state: dict[str, Any], study: Study, probe: int) -> dict[str, Any]:
    """The next probe: the untested, buildable commit nearest the middle of the open range; or the end."""
    lo, hi = state["lo"], state["hi"]
    untested = [p for p in range(lo + 1, hi) if p not in state["skipped"]]
    if untested:
        target = min(untested, key=lambda p: (abs(p - (lo + hi) / 2), p))
        return {**state, "next": {"probe": probe, "target": target, "rounds": study.settings["rounds"]}}
    culprit = state["commits"][hi]
    if not _open(state)[:-1]:
        if lo == 0 and hi == len(state["commits"]) - 1:  # the endpoints' own test was the confirmation
            return _end({**state, "culprit": culprit}, CULPRIT,
                        f"the first bad commit is {culprit['commit'][:9]} \"{culprit['subject']}\"", candidates=[hi])
        return {**state, "next": {"probe": probe, "target": hi, "parent": lo, "rounds": study.settings["rounds"]}}
    return _end(state, AMBIGUOUS, f"the first bad commit is one of {_span(state)}: the others between did not build",
                candidates=_open(state))


def _open(state: Mapping[str, Any]) -> list[int]:
    return list(range(state["lo"] + 1, state["hi"] + 1))


def _span(state: Mapping[str, Any]) -> str:
    return ", ".join(state["commits"][p]["commit"][:9] for p in _open(state))


def _inconclusive(state: Mapping[str, Any], entry: Mapping[str, Any], alpha: float) -> str:
    """The end of a study whose probe stayed undecided: the open range, never one commit, and why."""
    lo, hi = (state["commits"][p]["commit"][:9] for p in (state["lo"], state["hi"]))
    if not _differs(entry["endpoints"], alpha, entry["floor"]):
        why = "its endpoints did not differ in its rounds"
    elif not (_differs(entry["vs_good"], alpha, entry["floor"]) or _differs(entry["vs_bad"], alpha, entry["floor"])):
        why = "it differed from neither endpoint"
    else:
        why = f"its tests disagree with its position ({entry['position']:.2f} of the way from good to bad)"
    return (f"inconclusive between {lo} and {hi}: after {entry['rounds']} rounds of the probe between them, {why}; "
            f"the first bad commit is one of {_span(state)}")


def _too_few(endpoints: Mapping[str, Any], metric: str, measured: int) -> str:
    """The end of a study whose endpoints were paired in too few rounds (the others failed or were disturbed):
    a CI run's endpoints, 0.870x apart in the one round of six that was not disturbed, had been reported as "no
    regression found"."""
    ratio = f": bad/good {metric} = {endpoints['ratio']:.3f}" if endpoints.get("ratio") is not None else ""
    paired = endpoints.get("rounds") or 0
    return (f"inconclusive: the endpoints were paired in {paired} of {measured} rounds (the others failed or were "
            f"disturbed){ratio}; neither a regression nor its absence can be stated")


def _no_regression(endpoints: Mapping[str, Any], metric: str) -> str:
    ci = ""
    if endpoints.get("ratio_ci_low") is not None:
        ci = f" (95 % CI {endpoints['ratio_ci_low']:.3f}-{endpoints['ratio_ci_high']:.3f})"
    p = f", p = {endpoints['p_value']:.3g}" if endpoints.get("p_value") is not None else ""
    return (f"no regression found: bad/good {metric} = {endpoints['ratio']:.3f}{ci}{p} over "
            f"{endpoints['rounds']} paired rounds")


def _end(state: dict[str, Any], outcome: str, sentence: str, candidates: list[int] | None = None) -> dict[str, Any]:
    return {**state, "ended": True, "outcome": outcome, "sentence": sentence, "next": None,
            "candidates": candidates or []}


def study_seconds(cells: Iterable[Mapping[str, Any]]) -> float:
    """Seconds of llama-bench runs over a study's cell records."""
    return round(sum(race.measuring_seconds(cell["llama_bench"]) or 0 for cell in cells), 3)


def observations(cells: Iterable[Mapping[str, Any]], metric: str, max_share: float | None,
                 ) -> dict[str, dict[int, float]]:
    """Commit -> round -> the mean over the study's cells (their readable records, every model) of log
    tokens/s; a round where any cell failed, or was disturbed beyond ``max_share``, is left out for that
    commit."""
    logs: dict[str, dict[int, list[float | None]]] = defaultdict(lambda: defaultdict(list))
    for cell in cells:
        found = race.cell_observation("bench_cell", cell, {"metric": metric, "weights": {}}, max_share)
        logs[cell["build"]["commit"]][cell["round"]].append(found.get("x"))
    return {commit: {r: float(np.mean(xs)) for r, xs in by_round.items() if None not in xs}
            for commit, by_round in logs.items()}

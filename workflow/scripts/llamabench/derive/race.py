"""A tuning study's decisions between rounds: which candidates are dropped, when the study ends, what is next.

Pure functions of the study (core/tuning.py) and the observations so far, so
that a decision can be replayed on recorded measurements (tests, benchmarks).
An observation is one candidate's objective in one round: ``x`` the log of its
score (higher is better), ``v`` the variance of that mean over llama-bench's
repetitions inside the cell, ``seconds`` its measuring time, or ``why`` it
failed.

**A race** measures its alive candidates once per round, in a shuffled order. A
served objective's observation comes from a serving cell's requests (TTFT: their
mean log; throughput: aggregate tokens/s, and a round over the TTFT limit fails
the candidate: a latency constraint).

- After its first round there is no paired spread yet (one round): the *screen*
  drops a candidate whose score is below the best's by more than delta with
  z > z(1 - alpha/m) over the within-cell repetitions (m candidates compared, a
  Bonferroni bound). Repetitions seconds apart do not see the machine drifting
  over minutes, so its real error rate is measured, not assumed: replayed on
  recorded grids (tests/test_race.py, benchmarks/tune_vs_grid.py).
- From the second round on, each alive candidate is compared with the current
  best by the log ratio of their scores in each round both have (paired: the
  same drift hit both), with a variance pooled over every pair (so two rounds
  already give many degrees of freedom), a one-sided t-test, and Holm's step-down
  over the candidates at alpha / (race_rounds - 1) per round (Bonferroni over the
  looks): the chance of ever dropping a candidate as good as the best is at most
  about alpha.
- The race ends when one candidate is left (``winner``: better than every other),
  when every survivor is within delta of the best by two one-sided tests
  (``equivalent``: an intersection-union test, each at alpha), or after
  ``race_rounds`` rounds (``budget``: no winner claimed).

**A study** is one race over every candidate when the space is small enough to
enumerate; otherwise coordinate descent: one race per axis (the incumbent with
that axis varied), the race's pick becomes the incumbent, passes over the axes
until one changes nothing (at most ``PASSES``). Its guarantee is per axis: a
local optimum, and it says so. After the answer the winner is measured beside
the defaults until they share ``min_rounds`` rounds (the speed-up's interval),
unless the budget (rounds, measuring minutes, distinct candidates) ends it first.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as scistats

from llamabench.core import axes, layout, metrics, tuning
from llamabench.core.records import RecordError
from llamabench.core.status import Status
from llamabench.core.tuning import Study
from llamabench.derive import latency, samples

PASSES = 2
WINNER, EQUIVALENT, BUDGET, FAILED = "winner", "equivalent", "budget", "failed"
Observations = Mapping[str, Mapping[int, Mapping[str, Any]]]  # candidate -> round -> observation


def start(study: Study, over_budget: Mapping[str, str] | None = None,
          quality: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Decision 0: the first race and the candidates of round 1. ``over_budget``: candidates whose quality cost
    exceeds the study's quality budget, with why (derive/quality.py ``within``): every race drops them before
    their first round, so they are never measured and never win. ``quality``: the budget and every candidate's
    cost, kept for the answer."""
    state: dict[str, Any] = {"round": 0, "mode": study.mode, "phase": "race", "races": [], "measured": [],
                             "incumbent": None, "pass": 1, "axis_index": 0, "changed": False, "race": None,
                             "next": [], "ended": None, "spent": {"rounds": 0, "minutes": 0.0, "candidates": 0},
                             "over_budget": dict(over_budget or {}), "quality": dict(quality) if quality else None}
    if study.mode == "race":
        _open_race(state, None, [c.id for c in study.candidates], 1)
    else:
        state["incumbent"] = _start_point(study, state["over_budget"])
        _next_axis(state, study, first=True)
    state["next"] = _next(state, study)
    return state


def advance(study: Study, previous: Mapping[str, Any], obs: Observations) -> dict[str, Any]:
    """The decision after round ``previous["round"] + 1``: what it measured, dropped and ended, and what is next."""
    state = copy.deepcopy(dict(previous))
    round_ = state["round"] = previous["round"] + 1
    state["measured"] += [[c, round_] for c in previous["next"]]
    seconds = sum(obs.get(c, {}).get(r, {}).get("seconds") or 0.0 for c, r in state["measured"])
    state["spent"] = {"rounds": round_, "minutes": round(seconds / 60, 3),
                      "candidates": len({c for c, _ in state["measured"]})}
    if state["phase"] == "race":
        race = state["race"]
        for c in previous["next"]:
            if c in race["alive"] and (why := obs.get(c, {}).get(round_, {}).get("why")):
                _drop(race, c, round_, why)
        _eliminate(race, obs, round_, study)
        if end := _race_end(race, obs, round_, study):
            _finish_race(state, study, end)
    if state["phase"] == "confirm" and _confirmed(state, study, obs):
        state["phase"] = "ended"
    budget = study.settings["budget"]
    spent = (round_ >= budget["rounds"]
             or (budget["minutes"] is not None and state["spent"]["minutes"] >= budget["minutes"]))
    if spent and state["phase"] == "race":
        race = state["race"]
        end = {"reason": BUDGET, "round": round_, "pick": _best(race, obs, round_), "set": list(race["alive"])}
        if race["start"] <= round_:  # a race opened for the next round never measured: no part of the answer
            state["races"].append({**race, "end": end})
        if state["mode"] == "coordinate":
            end = {**_combined([r for r in state["races"] if r["pass"] == state["pass"]], state["incumbent"]),
                   "reason": BUDGET}
        _answer(state, study, end, budget_spent=True)
    if spent or state["phase"] == "ended":
        state["phase"], state["next"] = "ended", []
        state["ended"] = {**state["answer"], "confirmed_rounds": _paired_rounds(state, study, obs)}
        return state
    state["next"] = _next(state, study)
    return state


def _open_race(state: dict[str, Any], axis: str | None, members: list[str], start_round: int) -> None:
    state["race"] = race = {"axis": axis, "pass": state["pass"], "start": start_round, "members": members,
                            "alive": list(members), "dropped": []}
    for candidate, why in state.get("over_budget", {}).items():
        if candidate in race["alive"]:
            _drop(race, candidate, start_round - 1, why)


def _start_point(study: Study, over_budget: Mapping[str, str]) -> str:
    """Coordinate descent starts from the defaults where the space's grid has them, else from the point of the
    grid that shares most of their values (the defaults themselves are measured beside the winner at the end)."""
    reference = study.by_id[study.reference].params
    inside = [c for c in study.candidates if c.in_space and c.id not in over_budget]
    return max(inside, key=lambda c: (sum(axes.value(c.params, a, study.kind) == axes.value(reference, a, study.kind)
                                          for a in study.axes), c.id == study.reference)).id


def _next_axis(state: dict[str, Any], study: Study, first: bool = False) -> None:
    """Open the race of the next axis that has two valid members, or give the answer when a pass changed nothing."""
    index = 0 if first else state["axis_index"] + 1
    while True:
        if index >= len(study.axes):
            if state["changed"] and state["pass"] < PASSES:
                state["pass"], state["changed"], index = state["pass"] + 1, False, 0
            else:
                final = [r for r in state["races"] if r["pass"] == state["pass"]] or state["races"]
                _answer(state, study, _combined(final, state["incumbent"]))
                return
        axis = study.axes[index]
        incumbent = study.by_id[state["incumbent"]].params
        members = [c.id for c in study.candidates if c.in_space
                   and all(axes.value(c.params, a, study.kind) == axes.value(incumbent, a, study.kind)
                           for a in axes.names(study.kind) if a != axis)]
        if len(members) > 1:
            limit = study.settings["budget"]["candidates"]
            measured = {c for c, _ in state["measured"]}
            if limit is not None and len(measured | set(members)) > limit:
                final = state["races"] or [{"end": {"reason": BUDGET, "pick": state["incumbent"],
                                                    "set": [state["incumbent"]]}}]
                _answer(state, study, {**_combined(final, state["incumbent"]), "reason": BUDGET}, budget_spent=True)
                return
            state["axis_index"] = index
            _open_race(state, axis, members, state["round"] + 1)
            return
        index += 1


def _combined(races: list[dict[str, Any]], incumbent: str) -> dict[str, Any]:
    """Coordinate descent's answer from its last pass: a winner only if every race had one (no race at all claims
    nothing), and the settings indistinguishable from the incumbent along each axis it raced in."""
    reasons = [r["end"]["reason"] for r in races]
    reason = (BUDGET if not reasons or BUDGET in reasons or FAILED in reasons
              else WINNER if set(reasons) == {WINNER} else EQUIVALENT)
    together = [incumbent] + [c for r in races if incumbent in r["members"] for c in r["end"]["set"] if c != incumbent]
    return {"reason": reason, "pick": incumbent, "set": list(dict.fromkeys(together))}


def _finish_race(state: dict[str, Any], study: Study, end: dict[str, Any]) -> None:
    state["races"].append({**state["race"], "end": end})
    if state["mode"] == "race":
        _answer(state, study, end)
        return
    keep = state["incumbent"] in end["set"] and end["reason"] != WINNER
    pick = state["incumbent"] if keep or end["pick"] is None else end["pick"]
    state["changed"] |= pick != state["incumbent"]
    state["incumbent"] = pick
    _next_axis(state, study)


def _answer(state: dict[str, Any], study: Study, end: Mapping[str, Any], budget_spent: bool = False) -> None:
    """The study's answer; then the confirming rounds of the winner beside the defaults."""
    state["answer"] = {"reason": end["reason"], "winner": end["pick"], "indistinguishable": list(end["set"]),
                       "budget_spent": budget_spent, "answer_round": state["round"]}
    state["phase"], state["race"] = "confirm", None
    if end["pick"] is None:
        state["phase"] = "ended"


def _confirmed(state: dict[str, Any], study: Study, obs: Observations) -> bool:
    """Whether the winner and the defaults share ``min_rounds`` rounds after the answer (the winner alone its
    ``min_rounds`` when it is the defaults), or the defaults failed and never will."""
    answer = state["answer"]
    if any(o.get("why") for o in obs.get(study.reference, {}).values()):
        answer["note"] = "the defaults failed: no speed-up interval"
        return True
    return _paired_rounds(state, study, obs) >= study.settings["min_rounds"]


def _paired_rounds(state: Mapping[str, Any], study: Study, obs: Observations) -> int:
    """Rounds after the answer in which the winner and the defaults both have a score (the winner's own rounds
    when it is the defaults)."""
    answer = state.get("answer") or {}
    if answer.get("winner") is None:
        return 0
    first = 1 if answer["winner"] == study.reference else answer["answer_round"] + 1
    return len(_common(obs, answer["winner"], study.reference, range(first, state["round"] + 1)))


def _next(state: Mapping[str, Any], study: Study) -> list[str]:
    if state["phase"] == "confirm":
        return list(dict.fromkeys([state["answer"]["winner"], study.reference]))
    return list(state["race"]["alive"])


def _drop(race: dict[str, Any], candidate: str, round_: int, why: str) -> None:
    race["alive"].remove(candidate)
    race["dropped"].append({"candidate": candidate, "round": round_, "reason": why})


def scores(obs: Observations, candidate: str, rounds: range) -> dict[int, float]:
    """A candidate's log scores by round, over ``rounds``, where it has one (not failed, not disturbed)."""
    return {r: o["x"] for r in rounds if (o := obs.get(candidate, {}).get(r)) and o.get("x") is not None}


def _common(obs: Observations, a: str, b: str, rounds: range) -> list[int]:
    xa, xb = scores(obs, a, rounds), scores(obs, b, rounds)
    return [r for r in xa if r in xb]


def _best(race: Mapping[str, Any], obs: Observations, round_: int) -> str | None:
    """The alive candidate with the highest mean score over the race's rounds."""
    rounds = range(race["start"], round_ + 1)
    means = {c: float(np.mean(list(found.values()))) for c in race["alive"] if (found := scores(obs, c, rounds))}
    return max(means, key=lambda c: (means[c], c)) if means else None


def _paired(race: Mapping[str, Any], obs: Observations, round_: int, best: str,
            ) -> tuple[dict[str, np.ndarray], float | None, int]:
    """Each alive candidate's log ratios to the best, round by round, and their variance pooled over every pair
    (with its degrees of freedom)."""
    rounds = range(race["start"], round_ + 1)
    xb = scores(obs, best, rounds)
    diffs = {}
    for c in race["alive"]:
        if c != best:
            xc = scores(obs, c, rounds)
            diffs[c] = np.array([xc[r] - xb[r] for r in xc if r in xb])
    df = sum(len(d) - 1 for d in diffs.values() if len(d) > 1)
    if df == 0:
        return diffs, None, 0
    pooled = sum(float(((d - d.mean()) ** 2).sum()) for d in diffs.values() if len(d) > 1) / df
    return diffs, pooled, df


def _eliminate(race: dict[str, Any], obs: Observations, round_: int, study: Study) -> None:
    """Drop the alive candidates significantly worse than the best: the screen after a race's first round, the
    pooled paired test after each later one."""
    best = _best(race, obs, round_)
    others = [c for c in race["alive"] if c != best]
    if best is None or not others:
        return
    alpha, margin = study.settings["alpha"], math.log1p(study.settings["delta"])
    if round_ == race["start"]:
        z = scistats.norm.ppf(1 - alpha / len(others))
        ob = obs[best][round_]
        for c in others:
            oc = obs.get(c, {}).get(round_, {})
            if oc.get("x") is None or ob.get("v") is None or oc.get("v") is None:
                continue
            gap = ob["x"] - oc["x"]
            if gap - margin > z * math.sqrt(ob["v"] + oc["v"]):
                _drop(race, c, round_, f"screened out: {math.exp(-gap):.3f}x the best in its first round, more than "
                                       f"{study.settings['delta']:.0%} below it beyond its repetitions' spread")
        return
    diffs, pooled, df = _paired(race, obs, round_, best)
    if not pooled:
        return
    level = alpha / (study.settings["race_rounds"] - 1)
    tests = sorted((float(scistats.t.cdf(d.mean() / math.sqrt(pooled / len(d)), df)), c)
                   for c, d in diffs.items() if len(d))
    for rank, (p, c) in enumerate(tests):  # Holm's step-down
        if p > level / (len(tests) - rank):
            break
        _drop(race, c, round_, f"significantly slower than the best: {math.exp(diffs[c].mean()):.3f}x over "
                               f"{len(diffs[c])} paired rounds (one-sided p = {p:.2g})")


def _race_end(race: Mapping[str, Any], obs: Observations, round_: int, study: Study) -> dict[str, Any] | None:
    alive, rounds = race["alive"], round_ - race["start"] + 1
    if not alive:
        return {"reason": FAILED, "round": round_, "pick": None, "set": []}
    if len(alive) == 1:
        return {"reason": WINNER, "round": round_, "pick": alive[0], "set": list(alive)}
    best = _best(race, obs, round_)
    if rounds >= 2 and best is not None and _equivalent(race, obs, round_, best, study):
        return {"reason": EQUIVALENT, "round": round_, "pick": best, "set": list(alive)}
    if rounds >= study.settings["race_rounds"]:
        return {"reason": BUDGET, "round": round_, "pick": best, "set": list(alive)}
    return None


def _equivalent(race: Mapping[str, Any], obs: Observations, round_: int, best: str, study: Study) -> bool:
    """Two one-sided tests for every survivor against the best: its mean log ratio's (1 - 2 alpha) interval
    inside +-log(1 + delta)."""
    diffs, pooled, df = _paired(race, obs, round_, best)
    if pooled is None:
        return False
    t = scistats.t.ppf(1 - study.settings["alpha"], df)
    margin = math.log1p(study.settings["delta"])
    return all(len(d) and abs(d.mean()) + t * math.sqrt(pooled / len(d)) < margin for d in diffs.values())


def observation(scores: Mapping[str, tuple[float, list[float]]], objective: Mapping[str, Any]) -> dict[str, float]:
    """One cell's observation from its tests' scores ({"pp"|"tg": (mean t/s, per-repetition t/s)}): the
    objective's log score and the variance of that mean over the repetitions."""
    weights = metrics.OBJECTIVES[objective["metric"]].weights(objective.get("weights") or {})
    total = sum(weights.values())
    x = sum(w * math.log(scores[test][0]) for test, w in weights.items() if w) / total
    parts = [(w / total) ** 2 * float(np.var(np.log(scores[test][1]), ddof=1)) / len(scores[test][1])
             for test, w in weights.items() if w and len(scores[test][1]) > 1]
    return {"x": x, "v": sum(parts) if parts else None}


def cell_kind(path: str) -> str:
    """The record kind of a study's cell file, by its place in the layout: a serving or a benchmark cell."""
    return "serve_cell" if layout.parse("tune_serve_cell", path) else "bench_cell"


def observations(cells: Mapping[Path, Mapping[str, Any] | RecordError], objective: Mapping[str, Any],
                 max_share: float | None) -> dict[str, dict[int, dict[str, Any]]]:
    """The observations of a study's cells ({file: its record, or why it could not be read}:
    ``records.read_each``). A round something else disturbed (beyond ``max_share``; None keeps it) is missing,
    not failed: the candidate goes on."""
    found: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for path, cell in cells.items():
        if isinstance(cell, RecordError):
            base, round_ = tuning.split(Path(path).stem)
            found[base][round_] = {"why": f"unreadable record: {cell}"}
            continue
        found[cell["base_cell"]][cell["round"]] = cell_observation(cell_kind(str(path)), cell, objective, max_share)
    return found


def cell_observation(kind: str, cell: Mapping[str, Any], objective: Mapping[str, Any], max_share: float | None,
                     ) -> dict[str, Any]:
    """One cell's observation: a llama-bench cell's tests, or a serving cell's requests (TTFT: the mean log over
    the requests, lower is better, so its negative is the score; throughput: the aggregate tokens/s, a round
    whose TTFT p90 exceeds the objective's limit failing the candidate)."""
    run = cell["serving" if kind == "serve_cell" else "llama_bench"]
    seconds = measuring_seconds(run)
    if run["status"] != Status.OK:
        return {"why": f"{run['status']}: {run.get('error') or 'no reason recorded'}", "seconds": seconds}
    if max_share is not None and (why := samples.disturbed(run, max_share)):
        return {"disturbed": why, "seconds": seconds}
    if kind == "bench_cell":
        return {**observation(bench_scores(run["records"]), objective), "seconds": seconds}
    if objective["metric"] == "ttft":
        logs = np.log([r["ttft_ms"] for r in run["requests"]])
        var = float(np.var(logs, ddof=1)) / len(logs) if len(logs) > 1 else None
        return {"x": -float(np.mean(logs)), "v": var, "seconds": seconds}
    found = latency.request_metrics(run["requests"], run["wall_s"], {"p90": 1, "p99": 1})
    throughput, ttft = found[metrics.AGGREGATE_TPS.name], found[metrics.TTFT_P90.name]
    if not throughput:
        return {"why": "no token generated", "seconds": seconds}
    if ttft > (limit := objective["ttft_p90_limit_ms"]):
        return {"why": f"TTFT p90 {ttft:.0f} ms, over the study's limit of {limit:g} ms", "seconds": seconds}
    return {"x": math.log(throughput), "v": None, "seconds": seconds}


def bench_scores(found: list[Mapping[str, Any]]) -> dict[str, tuple[float, list[float]]]:
    """A llama-bench cell's scores by test kind, pp and tg (mean t/s, per-repetition t/s), from its JSON records;
    a combined pp+tg test is neither, and weighs in no objective."""
    return {kind: (float(rec["avg_ts"]), [float(v) for v in rec["samples_ts"]]) for rec in found
            if (kind := metrics.test_kind(metrics.test_of(rec))) in metrics.SINGLE}


def measuring_seconds(run: Mapping[str, Any]) -> float | None:
    """How long a cell's measurement took: llama-bench's process, or the server from its start to the last
    request."""
    if run.get("duration_s") is not None:
        return float(run["duration_s"])
    if run.get("start") and run.get("end"):
        return (datetime.fromisoformat(run["end"]) - datetime.fromisoformat(run["start"])).total_seconds()
    return None

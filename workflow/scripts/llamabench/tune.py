"""Rule ``tune``: a tuning study's answer, results/tune/<study>.json, one result per build and model.

From the study's last decision and its cells: the winner, the candidates
indistinguishable from it, its speed-up over the defaults with the interval of
their paired rounds, every candidate's rounds, score and fate, why the study
ended, and what to run (the last decision's command lines and config lines).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from llamabench.core import layout, plan, records
from llamabench.core.metrics import OBJECTIVES
from llamabench.core.tuning import Study
from llamabench.derive import race, statistics

ENDS = {
    race.WINNER: "one candidate is better than every other it raced",
    race.EQUIVALENT: "the survivors are equivalent within delta",
    race.BUDGET: "the budget was spent before a winner: no winner claimed",
    race.FAILED: "every candidate failed",
}


def tune(smk: Any) -> None:
    the_plan = plan.of(smk.config)
    study = the_plan.studies[smk.wildcards.study]
    cells: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path in smk.input.cells:
        key = layout.parse("tune_cell", path) or layout.parse("tune_serve_cell", path)
        cells[(key["build"], key["model"])].append(Path(path))
    results = []
    for path in smk.input.decisions:
        decision = records.read(path, "tune_round")
        found = race.observations(records.read_each(cells[(decision["build"], decision["model"])], race.cell_kind),
                                  study.settings["objective"],
                                  smk.params.max_share if smk.params.action != "flag" else None)
        answer = {**result(study, decision, found), **decision.get("commands", {})}
        results.append({**answer, "sentence": sentence(study, answer)})
    records.write(smk.output[0], "tune", {
        "study": study.name, "mode": study.mode, "objective": study.settings["objective"],
        "workload": study.settings["workload"], "delta": study.settings["delta"], "alpha": study.settings["alpha"],
        "budget": study.settings["budget"], "space_size": len(study.candidates),
        "unit": OBJECTIVES[study.settings["objective"]["metric"]].unit,
        "excluded": [{"label": label, "why": why} for label, why in study.excluded], "results": results})


def result(study: Study, decision: Mapping[str, Any], obs: race.Observations) -> dict[str, Any]:
    """One build and model's answer."""
    state = decision["state"]
    ended = state["ended"] or {}
    winner = ended.get("winner")
    rounds = range(1, state["round"] + 1)
    # the winner's speed-up from the rounds after it was chosen (those that chose it would flatter it), where
    # the confirming rounds give an interval
    after = range(ended.get("answer_round", 0) + 1, state["round"] + 1)
    speedup = {}
    if winner:
        speedup = {**_ratio(obs, study.reference, winner, after), "from": "the rounds after the answer"}
        if speedup.get("ratio_ci_low") is None:
            speedup = {**_ratio(obs, study.reference, winner, rounds), "from": "every round (too few after the answer)"}
    found = {
        "build": decision["build"], "model": decision["model"], "end_reason": ended.get("reason"),
        "end": ENDS.get(ended.get("reason"), "not ended"), "budget_spent": ended.get("budget_spent"),
        "winner": _candidate(study, winner) if winner else None,
        "indistinguishable": [_candidate(study, c) for c in ended.get("indistinguishable", [])],
        "speedup": speedup, "confirmed_rounds": ended.get("confirmed_rounds"), "spent": state["spent"],
        "rounds": _rounds(state), "races": [_race(r) for r in state["races"]],
        "candidates": _candidates(study, state, obs, winner, rounds),
        "over_budget": [{**_candidate(study, c), "reason": why} for c, why in (state.get("over_budget") or {}).items()],
    }
    if quality := state.get("quality"):
        found["quality"] = {"budget": quality["budget"],
                            "winner": (quality["costs"].get(winner) or ZERO_COST) if winner else None}
    return found


# The quality cost of settings that are the reference's: nothing.
ZERO_COST = {"kld_mean": 0.0, "kld_ci_low": 0.0, "kld_ci_high": 0.0, "same_top": 1.0, "ppl_ratio": 1.0}


def _candidate(study: Study, cid: str) -> dict[str, Any]:
    candidate = study.by_id[cid]
    return {"id": cid, "label": candidate.label, "params": dict(candidate.params)}


def _ratio(obs: race.Observations, reference: str, candidate: str, rounds: range) -> dict[str, Any]:
    """``candidate`` over ``reference`` in their paired rounds: the ratio of geometric means and its 95 % CI."""
    a, b = race.scores(obs, reference, rounds), race.scores(obs, candidate, rounds)
    common = [r for r in a if r in b]
    if reference == candidate:
        return {"ratio": 1.0, "ratio_ci_low": 1.0, "ratio_ci_high": 1.0, "rounds": len(common)}
    paired = statistics.paired([math.exp(a[r]) for r in common], [math.exp(b[r]) for r in common])
    return {**paired, "rounds": len(common)}


def _rounds(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    by_round: dict[int, list[str]] = defaultdict(list)
    for candidate, round_ in state["measured"]:
        by_round[round_].append(candidate)
    dropped = [d for r in state["races"] for d in r["dropped"]] + (state["race"] or {}).get("dropped", [])
    return [{"round": r, "measured": len(found), "dropped": [d["candidate"] for d in dropped if d["round"] == r]}
            for r, found in sorted(by_round.items())]


def _race(found: Mapping[str, Any]) -> dict[str, Any]:
    return {"axis": found["axis"], "pass": found["pass"], "start": found["start"], "members": len(found["members"]),
            "end": found["end"]["reason"], "end_round": found["end"]["round"] if "round" in found["end"] else None,
            "pick": found["end"]["pick"]}


def _candidates(study: Study, state: Mapping[str, Any], obs: race.Observations, winner: str | None,
                rounds: range) -> list[dict[str, Any]]:
    """Every measured candidate: its rounds, geometric-mean score, ratio to the winner and fate."""
    dropped = {d["candidate"]: d for r in [*state["races"], state["race"] or {"dropped": []}] for d in r["dropped"]}
    ended = state["ended"] or {}
    found = []
    sign = -1 if study.settings["objective"]["metric"] == "ttft" else 1  # a TTFT's score is -log(ms)
    for cid in dict.fromkeys(c for c, _ in state["measured"]):
        xs = list(race.scores(obs, cid, rounds).values())
        fate = ("winner" if cid == winner else "indistinguishable" if cid in ended.get("indistinguishable", [])
                else "dropped" if cid in dropped else "not picked")
        found.append({**_candidate(study, cid), "rounds": len(xs),
                      "score": math.exp(sign * float(np.mean(xs))) if xs else None,
                      "vs_winner": _ratio(obs, winner, cid, rounds) if winner and xs else {}, "fate": fate,
                      "dropped_round": dropped.get(cid, {}).get("round"), "reason": dropped.get(cid, {}).get("reason"),
                      "mean": float(np.mean(xs)) if xs else -math.inf})
    found.sort(key=lambda c: -c["mean"])
    return [{key: value for key, value in c.items() if key != "mean"} for c in found]


def sentence(study: Study, found: Mapping[str, Any]) -> str:
    """The answer in one sentence, with its interval."""
    objective = study.settings["objective"]
    metric = OBJECTIVES[objective["metric"]].words
    if objective["metric"] == "throughput":
        metric += f" (TTFT p90 under {objective['ttft_p90_limit_ms']:g} ms)"
    if not found["winner"]:
        return f"Tuning {study.name}: no answer ({found['end']})."
    others = len(found["indistinguishable"]) - 1
    tail = f"; {others} other setting(s) within {study.settings['delta']:.0%}" if others > 0 else ""
    spent = (f" ({study.name}, {found['spent']['candidates']} candidates measured in {found['spent']['rounds']} "
             f"rounds, {found['spent']['minutes']:.1f} measuring minutes).")
    if found["winner"]["label"] == "defaults":  # nothing to change: no speed-up to state
        claim = {"winner": "Keep the defaults", "equivalent": "Keep the defaults (or any of the equivalent set)",
                 "budget": "Best so far, no winner claimed: the defaults", "failed": "No answer: the defaults"}
        return f"{claim[found['end_reason']]} for {metric}{tail}{spent}"
    speed = found["speedup"]
    interval = (f" (95 % CI {speed['ratio_ci_low']:.2f}-{speed['ratio_ci_high']:.2f}×, {speed['rounds']} paired rounds)"
                if speed.get("ratio_ci_low") is not None else "")
    claim = {"winner": "Use", "equivalent": "Use (or any of the equivalent set)",
             "budget": "Best so far, no winner claimed:", "failed": "No answer:"}[found["end_reason"]]
    times = f"{speed.get('ratio', 1):.2f}× " + ("as fast as the defaults'" if objective["metric"] == "ttft"
                                                 else "the defaults")
    flags = f" (flags {found['flags']})" if found.get("flags") else ""
    return f"{claim} {found['winner']['label']}{flags}: {metric} {times}{interval}{quality_words(found)}{tail}{spent}"


def quality_words(found: Mapping[str, Any]) -> str:
    """``, within the quality budget (max_kld 0.05): KLD 0.0092 (95 % CI 0.0080-0.0104), top token unchanged in
    93.9 %, 1 candidate over it`` - for a study with a quality budget."""
    quality = found.get("quality")
    if not quality or not quality.get("winner"):
        return ""
    cost, over = quality["winner"], len(found.get("over_budget") or [])
    budget = ", ".join(f"{name} {value:g}" for name, value in quality["budget"].items())
    interval = (f" (95 % CI {cost['kld_ci_low']:.4g}-{cost['kld_ci_high']:.4g})"
                if cost.get("kld_ci_high") is not None else "")
    return (f", within the quality budget ({budget}): KLD {cost['kld_mean']:.4g}{interval}, top token unchanged in "
            f"{cost['same_top']:.1%}" + (f"; {over} candidate(s) over the budget, never measured" if over else ""))

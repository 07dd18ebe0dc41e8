"""What conversations say: each turn's time to first token and how much of its prompt the server reused, and what
a server setting changes turn by turn; pure functions of recorded requests and of the turns table.

A later turn resends its whole history, so its TTFT is the prefill of whatever the slot's prompt cache did not
hold, plus the wait for a slot. A turn row (results/serving_turns.csv) is one turn index of one cell and round: its
requests' TTFT, the reused share of their prompts (``cache_n / (cache_n + prompt_n)``), the wait before the prompt
started (``prompt_progress``) apart from the prefill. Cells that differ in one setting alone (the prompt cache, cache
reuse, a full-size SWA cache, the slots, ...) are compared turn by turn, paired by round: the machine drifts between
rounds, not within one, and a later turn is where the cache decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from llamabench.core import axes, sessions
from llamabench.derive import statistics, workloads

# The serving axes whose effect on conversations the findings compare turn by turn: the cache of prompts (the
# cache axis: reused or not) and the server settings that decide what a turn finds in it.
COMPARED = ("cache", "cache_reuse", "swa_full", "ctx_checkpoints", "slot_prompt_similarity", "kv_unified",
            "cache_ram", "cache_idle_slots", "parallel", "prompt_cache")


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.median(present)) if present else None


def cell_facts(requests: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A cell's conversation facts (a serving row's columns): conversations, the wait before prompts started and
    the prefill, the reused share of prompts, and the time-average number of conversations in flight."""
    waits = [r.get("wait_ms") for r in requests]
    present = [w for w in waits if w is not None]
    return {"sessions": len({r.get("session") for r in requests}),
            "wait_p50_ms": _median(waits), "wait_p90_ms": float(np.percentile(present, 90)) if present else None,
            "prefill_p50_ms": _median([r.get("prefill_ms") for r in requests]),
            "reused_share": float(np.mean([r.get("reused_share", 0.0) for r in requests])) if requests else None,
            "concurrent_sessions": concurrent(requests)}


def concurrent(requests: Sequence[Mapping[str, Any]]) -> float | None:
    """Conversations in flight on average over the window (first send to last answer): each one's span from its
    first turn sent to its last answered, summed, over the window (Little's law, measured rather than assumed)."""
    spans: dict[Any, list[float]] = {}
    for r in requests:
        span = spans.setdefault(r.get("session"), [r["sent_s"], r["done_s"]])
        span[0], span[1] = min(span[0], r["sent_s"]), max(span[1], r["done_s"])
    if not spans:
        return None
    window = max(s[1] for s in spans.values()) - min(s[0] for s in spans.values())
    return sum(s[1] - s[0] for s in spans.values()) / window if window > 0 else None


def session_goodput(requests: Sequence[Mapping[str, Any]], good: Sequence[bool], window_s: float) -> float:
    """Conversations per minute whose every turn met the objectives (``good``: each request's verdict)."""
    verdicts: dict[Any, bool] = {}
    for request, ok in zip(requests, good):
        verdicts[request.get("session")] = verdicts.get(request.get("session"), True) and ok
    return 60 * sum(verdicts.values()) / window_s if window_s > 0 else 0.0


def used_turns(turns: pd.DataFrame, serving: pd.DataFrame, used: set[str]) -> pd.DataFrame:
    """The turn rows of the cells and rounds the statistics use (serving rows of a ``used`` status: a disturbed
    round that was measured again is left out, as everywhere)."""
    if turns.empty:
        return turns
    kept = serving[serving["status"].isin(used)][["build", "model", "cell"]]
    return turns.merge(kept, on=["build", "model", "cell"])


def turn_rows(cell: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per turn index of a measured conversation cell: its requests' TTFT (mean, p50, p90), reused share,
    wait and prefill; nothing for a cell of lone requests."""
    run, params = cell["serving"], cell["params"]
    if not sessions.conversational(params) or not run.get("requests"):
        return []
    head = {"build": cell["build"]["name"], "model": cell["model"]["name"], "cell": cell["cell"],
            "base_cell": cell.get("base_cell", cell["cell"]), "round": cell.get("round", 1),
            "hostname": cell["host"]["hostname"],
            **{axis: axes.value(params, axis, axes.SERVING) for axis in axes.names(axes.SERVING)}}
    rows = []
    for turn in sorted({r["turn"] for r in run["requests"]}):
        of_turn = [r for r in run["requests"] if r["turn"] == turn]
        ttft = [r["ttft_ms"] for r in of_turn]
        rows.append({**head, "turn": turn, "requests": len(of_turn), "ttft_mean_ms": float(np.mean(ttft)),
                     "ttft_p50_ms": float(np.median(ttft)), "ttft_p90_ms": float(np.percentile(ttft, 90)),
                     "prompt_tokens_mean": float(np.mean([r["prompt_tokens"] for r in of_turn])),
                     "reused_share": float(np.mean([r.get("reused_share", 0.0) for r in of_turn])),
                     "wait_p50_ms": _median([r.get("wait_ms") for r in of_turn]),
                     "prefill_p50_ms": _median([r.get("prefill_ms") for r in of_turn])})
    return rows


def effects(turns: pd.DataFrame, alpha: float) -> list[dict[str, Any]]:
    """Per build, model and set of conversation cells that differ in one COMPARED axis alone: each other value
    against the baseline (the axis's default where measured, else its first value), turn by turn, the mean TTFT
    paired by round (derive/statistics.py ``paired``), p-values corrected over the turns of the pair. Each effect
    names the turn it states: the latest turn whose difference is significant, else the last turn."""
    found = []
    if turns.empty:
        return found
    rounds = turns.copy()
    for axis in COMPARED:
        rounds[axis] = rounds[axis].astype(str)
    for axis in COMPARED:
        for where, group in workloads.varying(rounds, axis, axes.SERVING):
            values = list(dict.fromkeys(group[axis]))
            default = str(axes.AXES[axis].default)
            baseline = default if default in values else sorted(values)[0]
            for value in (v for v in values if v != baseline):
                if effect := _effect(group, axis, baseline, value, alpha):
                    found.append({**effect, "where": where})
    return found


def _effect(group: pd.DataFrame, axis: str, baseline: str, value: str, alpha: float) -> dict[str, Any] | None:
    """One value against the baseline, turn by turn (paired by round), and the turn the finding states."""
    by_turn = []
    for turn, of_turn in group.groupby("turn"):
        means = of_turn.pivot_table(index="round", columns=axis, values="ttft_mean_ms").dropna()
        if baseline not in means or value not in means or means.empty:
            continue
        test = statistics.paired(list(means[baseline]), list(means[value]))
        by_turn.append({"turn": int(turn), "baseline_ms": statistics.geometric_mean(list(means[baseline])),
                        "candidate_ms": statistics.geometric_mean(list(means[value])), "rounds": len(means),
                        "reused_baseline": float(group[(group["turn"] == turn) & (group[axis] == baseline)]
                                                 ["reused_share"].mean()),
                        "reused_candidate": float(group[(group["turn"] == turn) & (group[axis] == value)]
                                                  ["reused_share"].mean()), **test})
    if not by_turn:
        return None
    tested = [t for t in by_turn if t.get("p_value") is not None]
    for t, p in zip(tested, statistics.adjust([t["p_value"] for t in tested])):
        t["p_adjusted"] = p
    for t in by_turn:
        t["verdict"] = statistics.verdict(t.get("p_adjusted"), t.get("ratio"), alpha, t.get("note"), better="lower")
    significant = [t for t in by_turn if t["verdict"] in (statistics.IMPROVED, statistics.REGRESSED)]
    stated = (significant or by_turn)[-1]
    first = group.iloc[0]
    return {"build": first["build"], "model": first["model"], "axis": axis, "baseline": baseline, "value": value,
            "turns": by_turn, "stated": stated}

"""The load statistics (derive/load.py) replayed on a real sweep's recorded requests
(tests/data/load-levels-gemma3-270m.json, benchmarks/record_load_fixture.py): the saturation test flags the
overloaded level and never a light one, a time-reversed overload is no saturation, the pilot climbs to
saturation and refines near the knee, and each round's capacity stops below its first missing level."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from llamabench.core import load as sweeps
from llamabench.derive import load

FIXTURE = json.loads((Path(__file__).parent / "data" / "load-levels-gemma3-270m.json").read_text())
LEVELS = {float(rate): {int(r): reqs for r, reqs in rounds.items()} for rate, rounds in FIXTURE["levels"].items()}
RATES = sorted(LEVELS)
SETTINGS = FIXTURE["settings"]
ALPHA = SETTINGS["alpha"] / len(RATES)  # as the load_sweep rule corrects over a round's levels


def metrics(rate: float, round_: int) -> dict[str, Any]:
    return load.level_metrics(LEVELS[rate][round_], SETTINGS["objectives"], ALPHA)


def test_the_light_levels_are_never_saturated_and_the_overload_is() -> None:
    rounds = sorted(LEVELS[RATES[0]])
    for rate in RATES[:2]:
        assert not any(metrics(rate, r)["saturated"] for r in rounds), rate
        assert all(metrics(rate, r)["meets"] for r in rounds), rate
    top = [metrics(RATES[-1], r) for r in rounds]
    assert sum(m["saturated"] for m in top) >= 2 and not all(m["meets"] for m in top)


def test_an_overload_played_backwards_is_no_saturation() -> None:
    """The test is one-sided: a queue that drains over the window is not one that grows."""
    for round_, requests in LEVELS[RATES[-1]].items():
        if not metrics(RATES[-1], round_)["saturated"]:
            continue
        end = max(r["done_s"] for r in requests)
        reversed_ = [{**r, "sent_s": end - r["done_s"], "done_s": end - r["sent_s"]} for r in requests]
        assert not load.saturation(reversed_, ALPHA)["saturated"]


def test_in_flight_counts_the_request_itself_and_never_exceeds_the_requests() -> None:
    for rate in RATES:
        for requests in LEVELS[rate].values():
            counts = load.in_flight(requests)
            assert min(counts) >= 1 and max(counts) <= len(requests)


def test_the_pilot_replayed_climbs_by_its_factor_to_saturation_and_refines_near_the_knee() -> None:
    pilot = SETTINGS["pilot"]

    def measure(rate: float) -> dict[str, Any]:  # the recorded round-1 level nearest to the rate asked for
        nearest = min(RATES, key=lambda r: abs(math.log(r / rate)))
        return load.level_metrics(LEVELS[nearest][1], SETTINGS["objectives"], SETTINGS["alpha"] / pilot["max_levels"])

    found = load.pilot(measure, RATES[0], pilot["factor"], pilot["refine"], pilot["max_levels"])
    rates = [level["rate"] for level in found["levels"]]
    assert rates[1] == pytest.approx(rates[0] * pilot["factor"], rel=0.01)
    assert found["ended"] == "saturated" and any(level["saturated"] for level in found["levels"])
    assert len(rates) <= pilot["max_levels"] and found["chosen"] == sorted(rates)
    if found["bounded"] and len(rates) < pilot["max_levels"]:
        low = found["capacity"]
        above = min(r for r in rates if r > low)
        # refined until the gap is within refine, or the next midpoint rounds onto a level already tried
        assert above / low <= 1 + pilot["refine"] or sweeps.level_rate(math.sqrt(low * above)) in (low, above, *rates)


def test_a_round_s_capacity_stops_below_its_first_missing_level() -> None:
    rounds = sorted(LEVELS[RATES[0]])
    capacities = []
    for round_ in rounds:
        found = {rate: metrics(rate, round_) for rate in RATES}
        answer = load.capacity(found)
        missed = [rate for rate in RATES if not found[rate]["meets"]]
        assert answer["capacity"] == max([0.0, *(r for r in RATES if not missed or r < missed[0])])
        capacities.append(answer["capacity"])
    spread = load.across_rounds(capacities)
    assert spread["capacity_ci_low"] <= spread["capacity_mean"] <= spread["capacity_ci_high"]
    assert spread["capacity_ci_low"] >= 0


def result_of(build: str, objectives: dict[str, Any]) -> dict[str, Any]:
    """A load_sweep result of the recorded levels under ``objectives``: what stats.load_pairs reads."""
    rounds = []
    for round_ in sorted(LEVELS[RATES[0]]):
        found = {rate: load.level_metrics(LEVELS[rate][round_], objectives, ALPHA) for rate in RATES}
        rounds.append({"round": round_, **load.capacity(found), "disturbed": False})
    return {"build": build, "model": FIXTURE["setup"]["model"], "rounds": rounds,
            "rounds_used": [r["round"] for r in rounds], "hostname": "vm"}


def test_capacities_pair_by_round_and_a_build_meeting_no_level_is_not_tested() -> None:
    from llamabench import stats

    same = result_of("a", SETTINGS["objectives"])
    strict = result_of("c", {"ttft_ms": {"p90": 50}})  # no level's TTFT p90 is that low: capacity 0 every round
    assert {r["capacity"] for r in strict["rounds"]} == {0.0}
    sweep = {"sweep": "chat", "builds": ["a", "b", "c"], "results": [same, {**same, "build": "b"}, strict]}
    twin, never = stats.load_pairs([sweep])
    assert (twin["baseline_build"], twin["candidate_build"], twin["ratio"]) == ("a", "b", 1.0)
    assert twin["paired_rounds"] == len(same["rounds"]) and twin["p_value"] == 1.0
    assert never["candidate_build"] == "c" and "ratio" not in never and "no level" in never["note"]

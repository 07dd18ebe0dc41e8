"""The load statistics (derive/load.py) replayed on a real sweep's recorded requests
(tests/data/load-levels-gemma3-270m.json, benchmarks/record_load_fixture.py): the saturation test flags the
overloaded level and never a light one, a time-reversed overload is no saturation, the pilot climbs to a
confirmed saturation and refines near the knee, a false alarm (injected into a real light level) is refuted by the
level above and changes no level chosen, the false-alarm rates of one call and of a confirmed one on short windows
of the real light levels, and each round's capacity stops below its first missing level."""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
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


PILOT = SETTINGS["pilot"]
PILOT_ALPHA = SETTINGS["alpha"] / PILOT["max_levels"]  # as the load_pilot rule corrects over its most levels
# the recorded levels saturated in every round at the pilot's alpha: real overloads
OVERLOADED = {rate for rate, rounds in LEVELS.items()
              if all(load.saturation(requests, PILOT_ALPHA)["saturated"] for requests in rounds.values())}


def replay(false_alarm_at: float | None = None) -> Callable[[float], dict[str, Any]]:
    """A pilot's ``measure``: the level_metrics of the recorded level nearest to the rate asked for, each visit to
    a level its next round (the level above the top recorded one is that one measured again: a heavier load would
    only queue more). At ``false_alarm_at`` the saturation call is forced: the injected false alarm (the requests,
    percentiles and goodput stay the real ones)."""
    visits: dict[float, int] = {}

    def measure(rate: float) -> dict[str, Any]:
        nearest = min(RATES, key=lambda r: abs(math.log(r / rate)))
        visits[nearest] = visits.get(nearest, 0) + 1
        rounds = sorted(LEVELS[nearest])
        found = load.level_metrics(LEVELS[nearest][rounds[(visits[nearest] - 1) % len(rounds)]],
                                   SETTINGS["objectives"], PILOT_ALPHA)
        if nearest == false_alarm_at and visits[nearest] == 1:
            found.update(saturated=True, meets=False, missed=[*found["missed"], load.SATURATED])
        return found

    return measure


def test_a_false_alarm_at_the_first_level_is_refuted_by_the_next_and_the_pilot_finds_the_same_knee() -> None:
    """Issue 33: one saturation call at a light level ended a pilot there (1.59 requests/s, on a server whose twin
    climbed to 13). The level above, not saturated, refutes it: the climb goes on to the same levels, and the
    recorded overload is confirmed by the recorded overload above it and ends the climb."""
    plain = load.pilot(replay(), RATES[0], PILOT["factor"], PILOT["refine"], PILOT["max_levels"])
    alarmed = load.pilot(replay(false_alarm_at=RATES[0]), RATES[0], PILOT["factor"], PILOT["refine"],
                         PILOT["max_levels"])
    first = alarmed["levels"][0]
    assert first["saturated"] and first["false_alarm"] and not first["confirmed"]
    assert first["meets"] and first["missed"] == []  # its percentiles met the objectives: the verdict is theirs
    assert alarmed["false_alarms"] == [RATES[0]] and plain["false_alarms"] == []
    for found in (plain, alarmed):
        assert found["ended"] == "saturated"
        confirmed = [level["rate"] for level in found["levels"] if level["confirmed"]]
        assert len(confirmed) >= 2 and max(found["chosen"]) == max(confirmed)  # nothing tried above them
        assert set(confirmed) <= OVERLOADED
    assert alarmed["chosen"] == plain["chosen"]
    assert (alarmed["capacity"], alarmed["first_missed"]) == (plain["capacity"], plain["first_missed"])


def test_a_recorded_overload_at_the_first_level_is_confirmed_by_the_next_and_ends_the_climb() -> None:
    found = load.pilot(replay(), RATES[-1], PILOT["factor"], PILOT["refine"], PILOT["max_levels"])
    top, above = found["levels"][:2]
    assert above["rate"] == pytest.approx(top["rate"] * PILOT["factor"], rel=0.01)
    assert top["confirmed"] and above["confirmed"] and found["ended"] == "saturated"
    assert found["capacity"] < top["rate"] and max(found["chosen"]) == above["rate"]  # refined below, not above


def test_a_saturated_top_level_left_unconfirmed_by_max_levels_still_ends_the_capacity() -> None:
    """Out of levels before the level above could be measured: the call is neither confirmed nor refuted, and the
    pilot's capacity stays below it (the safe side)."""
    overloaded = min(OVERLOADED)
    levels = 1 + round(math.log(overloaded / RATES[0]) / math.log(PILOT["factor"]))
    found = load.pilot(replay(), RATES[0], PILOT["factor"], PILOT["refine"], levels)
    top = found["levels"][-1]
    assert found["ended"] == "max_levels" and len(found["levels"]) == levels
    assert top["saturated"] and not top["confirmed"] and not top["false_alarm"]
    assert found["bounded"] and found["first_missed"] <= top["rate"]


# the levels met in every round (so never saturated at the rounds' alpha), each the pilot's factor above the last
LIGHT = [rate for rate in RATES if all(metrics(rate, round_)["meets"] for round_ in LEVELS[rate])]


def idle_windows(requests: Sequence[Mapping[str, Any]], size: int) -> dict[int, list[Mapping[str, Any]]]:
    """Every run of ``size`` consecutive recorded requests whose first found the server idle, by its first's
    index: what a pilot level of ``size`` requests is (it starts on an idle server), at this level's real arrivals
    and service times. No earlier request is in flight during it, so its in-flight counts are the real ones."""
    ordered = sorted(requests, key=lambda r: r["sent_s"])
    flights = load.in_flight(ordered)
    return {i: ordered[i:i + size] for i in range(len(ordered) - size + 1) if flights[i] == 1}


@functools.cache
def light_calls(size: int, alpha: float) -> dict[float, dict[tuple[int, int], bool]]:
    """The saturation call of every idle-start window of every light level, by (round, first index)."""
    return {rate: {(round_, i): load.saturation(window, alpha)["saturated"]
                   for round_, requests in LEVELS[rate].items() for i, window in idle_windows(requests, size).items()}
            for rate in LIGHT}


def false_alarm_rates(size: int, alpha: float) -> dict[str, float]:
    """Replayed on the light levels' real requests: how often one call is a false alarm (``single``), and how
    often a level and the level above (the next light level, a factor up) are both called saturated, the
    confirmed rule's false alarm: ``confirmed`` pairs the windows of one round at the same index (measured apart,
    as a pilot's two levels are), ``product`` is what independent calls give."""
    calls = light_calls(size, alpha)
    single = [call for by_window in calls.values() for call in by_window.values()]
    pairs = [(calls[low][key], calls[high][key]) for low, high in itertools.pairwise(LIGHT) for key in calls[low]
             if key in calls[high]]
    rate = {level: sum(by_window.values()) / len(by_window) for level, by_window in calls.items()}
    return {"single": sum(single) / len(single), "windows": len(single),
            "confirmed": sum(a and b for a, b in pairs) / len(pairs), "pairs": len(pairs),
            "product": sum(rate[low] * rate[high] for low, high in itertools.pairwise(LIGHT)) / (len(LIGHT) - 1)}


@pytest.mark.parametrize(("size", "alpha"), [
    (PILOT["requests"], PILOT_ALPHA),  # the recorded sweep's pilot: 20 requests a level, alpha over 14 levels
    (12, SETTINGS["alpha"] / 6),  # tests/test_load.py's, the A/A run: 12 requests, alpha over 6 levels
])
def test_confirming_a_saturation_by_the_level_above_squares_the_false_alarm_rate(size: int, alpha: float) -> None:
    """On short windows the Kendall tests' false alarms are far above alpha (a cluster of arrivals lifts several
    requests' in-flight counts and TTFT in a row); the confirmed rule needs two, at two levels. The numbers are
    docs/serving.md's."""
    assert LIGHT == RATES[:3]
    found = false_alarm_rates(size, alpha)
    assert found["windows"] > 400 and found["pairs"] > 150
    assert found["single"] < 0.1
    assert found["confirmed"] < 0.01 and found["product"] < 0.01
    assert found["product"] < found["single"] / 5


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
    assert 0 < spread["capacity_ci_low"] <= spread["capacity_mean"] <= spread["capacity_ci_high"]


def test_a_false_alarm_in_a_round_does_not_cut_its_capacity() -> None:
    """Each recorded round judged as the load_sweep rule judges it: with the lightest level's saturation call
    forced (the injected false alarm; its requests are real), the levels above it, unsaturated, refute it, and the
    round's capacity is what it is without it; a real overload still ends it."""
    for round_ in sorted(LEVELS[RATES[0]]):
        found = {rate: metrics(rate, round_) for rate in RATES}
        plain = load.capacity(load.calls(found))
        forced = dict(found)
        forced[RATES[0]] = {**found[RATES[0]], "saturated": True, "meets": False,
                            "missed": [*found[RATES[0]]["missed"], load.SATURATED]}
        assert load.capacity(forced)["capacity"] == 0.0  # the plain rule: the false alarm cuts the round to 0
        judged = load.calls(forced)
        assert judged[RATES[0]]["false_alarm"] and load.capacity(judged) == plain
        assert plain["bounded"] and plain["capacity"] > RATES[0]


def test_a_capacity_s_interval_is_on_the_log_scale_unless_a_round_has_none() -> None:
    """Capacities at the recorded levels 0.786, 1.77 and 2.4 requests/s: a linear t-interval would reach
    below 0; on the log scale it stays above 0 around the geometric mean. A round meeting the objectives at no
    level (capacity 0) has no log: the arithmetic mean, the linear interval floored at 0."""
    rates = [RATES[0], 1.77, 2.4]
    spread = load.across_rounds(rates)
    assert spread["capacity_mean"] == pytest.approx(math.prod(rates) ** (1 / 3))
    assert 0 < spread["capacity_ci_low"] < spread["capacity_mean"] < spread["capacity_ci_high"]
    none = load.across_rounds([0.0, *rates[1:]])
    assert none["capacity_mean"] == pytest.approx(sum(rates[1:]) / 3) and none["capacity_ci_low"] == 0.0
    assert load.across_rounds([1.77])["capacity_ci_low"] is None


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
    # a software GPU (lavapipe) beside a hardware one: never a ratio, whatever the numbers
    [mixed] = stats.load_pairs([{**sweep, "builds": ["a", "b"], "results": [same, {**same, "build": "b"}]}],
                               {"a": "GPU", "b": stats.SOFTWARE_GPU})
    assert "ratio" not in mixed and mixed["note"].startswith("not compared: a software GPU's numbers")

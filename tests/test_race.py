"""The tuner's decisions (derive/race.py) replayed on recorded real measurements, and its candidates.

Fixtures, recorded on this VM with benchmarks/record_tune_fixture.py from the default config's cpu-rpc build
of llama.cpp 0c1e570 and the bundled Gemma 3 270M Q4_K_M (llama-bench -r 3 -p 128 -n 32, each run its own
process, rounds interleaved in seeded shuffled orders):

- tests/data/tune-null-gemma3-270m.json: one setting (-t 2 -b 2048 -ub 512 -fa 1) under 6 labels, 8 rounds;
- tests/data/tune-space-gemma3-270m.json: threads {1, 2} x ubatch {32, 512} x flash attention {0, 1}, 5 rounds.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llamabench.core import configuration, tuning
from llamabench.derive import race

DATA = Path(__file__).parent / "data"
NULL = json.loads((DATA / "tune-null-gemma3-270m.json").read_text())
SPACE = json.loads((DATA / "tune-space-gemma3-270m.json").read_text())
OBJECTIVE = {"metric": "mix", "weights": {"pp": 1, "tg": 1}}


def make_study(study: dict[str, Any]) -> tuning.Study:
    """A study over the recorded defaults (flash attention on, as the fixtures ran)."""
    config = configuration.resolve({"benchmark": {"defaults": {"flash_attn": "on"}}, "tune": {"s": study}})
    return tuning.study("s", config["tune"]["s"], config, ["cpu"], ["gemma3-270m"])


def observation(found: dict[str, Any], objective: dict[str, Any] = OBJECTIVE) -> dict[str, Any]:
    scores = {test: (sum(found[test]) / len(found[test]), found[test]) for test in ("pp", "tg")}
    return {**race.observation(scores, objective), "seconds": found["seconds"]}


def decisions(study: tuning.Study, measured: dict[str, dict[int, dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Every decision of a study run to its end on recorded observations (the states its ``tune_round`` chain
    records): each decision sees only the rounds measured so far."""
    state = race.start(study)
    yield state
    obs: dict[str, dict[int, dict[str, Any]]] = {}
    while not state["ended"]:
        round_ = state["round"] + 1
        for candidate in state["next"]:
            obs.setdefault(candidate, {})[round_] = measured[candidate][round_]
        state = race.advance(study, state, obs)
        yield state


def replay(study: tuning.Study, measured: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """A study's last decision on recorded observations."""
    *_, last = decisions(study, measured)
    return last


def null_study() -> tuning.Study:
    """The defaults and five named candidates: six labels of the same settings (the recorded ones)."""
    return make_study({"workload": {"n_prompt": 128, "n_gen": 32}, "objective": OBJECTIVE,
                       "candidates": {f"copy{i}": {} for i in range(2, 7)},
                       "budget": {"rounds": 8}, "race_rounds": 6, "min_rounds": 2})


def test_a_null_study_claims_a_false_winner_at_most_8_times_in_100_seeds() -> None:
    """The same settings under six labels, labels shuffled within each recorded round (so each seed is a
    possible null history with the machine's real drift): a winner claim is a false one."""
    study = null_study()
    ids = [c.id for c in study.candidates]
    labels = sorted(NULL["candidates"])
    claims, drops = 0, 0
    for seed in range(100):
        rng = random.Random(seed)
        measured: dict[str, dict[int, dict[str, Any]]] = {c: {} for c in ids}
        for round_ in range(1, 9):
            shuffled = rng.sample(labels, len(labels))
            for candidate, label in zip(ids, shuffled):
                measured[candidate][round_] = observation(NULL["candidates"][label]["rounds"][str(round_)])
        state = replay(study, measured)
        claims += state["ended"]["reason"] == race.WINNER
        drops += sum(len(r["dropped"]) for r in state["races"])
    assert claims <= 8, f"{claims} false winners in 100 null studies"
    print(f"null studies: {claims} false winners, {drops} candidates dropped in 100 seeds")


def space_measured(study: tuning.Study) -> dict[str, dict[int, dict[str, Any]]]:
    """The space fixture's observations, by the study's candidate ids."""
    flags = {"threads": "-t", "ubatch_size": "-ub", "flash_attn": "-fa"}
    by_flags = {tuple(c["params"][f] for f in flags.values()): c for c in SPACE["candidates"].values()}
    found = {}
    for candidate in study.candidates:
        key = tuple({"on": 1, "off": 0}.get(candidate.params[a], candidate.params[a]) for a in flags)
        found[candidate.id] = {int(r): observation(o) for r, o in by_flags[key]["rounds"].items()}
    return found


def space_study(**extra: Any) -> tuning.Study:
    return make_study({"workload": {"n_prompt": 128, "n_gen": 32}, "objective": OBJECTIVE,
                       "space": {"threads": [1, 2], "ubatch_size": [32, 512], "flash_attn": ["off", "on"]},
                       "budget": {"rounds": 5}, "race_rounds": 4, "min_rounds": 2, **extra})


def grid_means(measured: dict[str, dict[int, dict[str, Any]]]) -> dict[str, float]:
    return {c: sum(o["x"] for o in rounds.values()) / len(rounds) for c, rounds in measured.items()}


@pytest.mark.parametrize("enumerate_limit", [64, 1], ids=["race", "coordinate"])
def test_the_pick_is_the_grids_best_within_delta_on_real_measurements(enumerate_limit: int) -> None:
    study = space_study(enumerate=enumerate_limit)
    measured = space_measured(study)
    means = grid_means(measured)
    best = max(means, key=means.get)
    state = replay(study, measured)
    ended = state["ended"]
    assert state["mode"] == ("race" if enumerate_limit > 1 else "coordinate")
    assert ended["winner"] is not None
    within = means[ended["winner"]] >= means[best] - 0.05
    assert within or best in ended["indistinguishable"], (ended, means)
    # no candidate within delta of the grid's best was screened out after one round
    screened = [d for r in state["races"] for d in r["dropped"] if d["reason"].startswith("screened")]
    assert all(means[d["candidate"]] < means[best] - 0.05 for d in screened), screened
    assert state["spent"]["rounds"] <= 5


def test_a_failed_candidate_is_dropped_with_its_reason_and_the_study_goes_on() -> None:
    study = space_study()
    measured = space_measured(study)
    victim = next(c.id for c in study.candidates if c.params["ubatch_size"] == 32 and c.params["threads"] == 2)
    measured[victim][1] = {"why": "predicted_out_of_memory: CPU predicted 900 MiB, more than its 800 MiB",
                           "seconds": 0.1}
    state = replay(study, measured)
    [dropped] = [d for r in state["races"] for d in r["dropped"] if d["candidate"] == victim]
    assert dropped["round"] == 1 and dropped["reason"].startswith("predicted_out_of_memory")
    assert state["ended"]["winner"] not in (None, victim)


def test_a_spent_budget_claims_no_winner() -> None:
    study = make_study({"workload": {"n_prompt": 128, "n_gen": 32}, "objective": OBJECTIVE,
                        "candidates": {f"copy{i}": {} for i in range(2, 7)}, "budget": {"rounds": 2},
                        "race_rounds": 6, "min_rounds": 2, "delta": 0.001})
    ids = [c.id for c in study.candidates]
    labels = sorted(NULL["candidates"])
    measured = {c: {r: observation(NULL["candidates"][label]["rounds"][str(r)]) for r in (1, 2)}
                for c, label in zip(ids, labels)}
    ended = replay(study, measured)["ended"]
    assert ended["reason"] == race.BUDGET and ended["budget_spent"]


def test_the_space_leaves_out_invalid_and_repeated_combinations_before_the_study() -> None:
    study = make_study({"space": {"flash_attn": ["on", "off"], "cache_type_v": ["f16", "q8_0"],
                                  "ubatch_size": {"from": 256, "to": 4096, "factor": 4}, "batch_size": [512]}})
    labels = dict(study.excluded)
    assert all(not (tuning.invalid(c.params)) for c in study.candidates)
    assert "flash_attn=off, cache_type_v=q8_0" in " ".join(labels)
    assert any("ubatch is capped" in why for why in labels.values())
    assert tuning.values({"from": 256, "to": 4096, "factor": 4}) == [256, 1024, 4096]
    assert tuning.values({"from": 1, "to": 4, "step": 1}) == [1, 2, 3, 4]


def test_two_names_for_the_same_settings_are_two_cells() -> None:
    study = null_study()
    assert len({c.id for c in study.candidates}) == 6
    assert len({tuple(sorted(c.params.items())) for c in study.candidates}) == 1


@pytest.mark.parametrize(("study", "message"), [
    ({"space": {"threads": [2]}}, "nothing to choose from"),
    ({"space": {"threads": [1, 2]}, "budget": {"rounds": 3}}, "below tune.s.min_rounds"),
    ({"space": {"threads": [1, 2]}, "builds": ["nope"]}, "tune.s.builds names 'nope'"),
    ({"space": {"batch_size": {"from": 1, "to": 100000, "step": 1}, "ubatch_size": {"from": 1, "to": 9, "step": 1}}},
     "more than 100000"),
])
def test_a_study_that_cannot_run_is_a_config_error_naming_its_key(study: dict[str, Any], message: str) -> None:
    with pytest.raises(configuration.ConfigError, match=message):
        configuration.resolve({"tune": {"s": study}})


def test_coordinate_descent_moves_on_the_spaces_grid_when_the_defaults_lie_outside_it() -> None:
    """The defaults (flash attention on) are not a point of this space: the descent starts from the point that
    shares most of their values and races only points of the grid; the defaults come back for the speed-up."""
    study = make_study({"workload": {"n_prompt": 128, "n_gen": 32}, "objective": OBJECTIVE, "enumerate": 1,
                        "space": {"threads": [1, 2], "ubatch_size": [32, 512], "flash_attn": ["off"]},
                        "budget": {"rounds": 5}, "race_rounds": 2, "min_rounds": 2})
    assert not study.by_id[study.reference].in_space
    state = replay(study, space_measured(study))
    grid = {c.id for c in study.candidates if c.in_space}
    assert state["races"] and all(set(r["members"]) <= grid for r in state["races"])
    assert state["races"][0]["axis"] == "threads" and state["ended"]["winner"] in grid

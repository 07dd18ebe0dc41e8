"""The plan's dynamic part (core/chains.py): every decision a checkpoint leads to, on recorded real records, in
milliseconds and without Snakemake.

- a bisect: the six real step records of a study that named a harmless commit
  (tests/data/bisect-harmless-commit-steps.json) and the cells and builds that study measured
  (tests/data/bisect-harmless-commit-measured.json); its second step gave probe 0 a fourth round, so it asked for
  probe 0's first three rounds again (the duplicate-cells case);
- a tuning study: the decisions derive/race.py takes on the recorded space fixture (tests/test_race.py);
- a load sweep: the real pilot of tests/data/load-levels-gemma3-270m.json;
- extra rounds: the real disturbed round of tests/data/rounds-0c1e570-cpu-gemma3-270m.csv (another process busy
  in round 3 of the ubatch-128 cell).

A checkpoint is a :class:`Checkpoint` handing back recorded records and noting which it was asked for.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from llamabench.core import bisect, chains, configuration, layout, plan
from llamabench.core.status import Status
from test_race import OBJECTIVE, decisions, space_measured

DATA = Path(__file__).parent / "data"
STEPS = json.loads((DATA / "bisect-harmless-commit-steps.json").read_text())
MEASURED = json.loads((DATA / "bisect-harmless-commit-measured.json").read_text())
STATES = [STEPS["start"], *(step["recorded"] for step in STEPS["steps"])]
BISECT = STEPS["study"]
LOAD = json.loads((DATA / "load-levels-gemma3-270m.json").read_text())
PILOT = [level["rate"] for level in LOAD["pilot"]]
ROUNDS = list(csv.DictReader((DATA / "rounds-0c1e570-cpu-gemma3-270m.csv").open()))

# The schema's defaults (the recorded study's cell is the default cell with tg32 alone), a git source, a bisect with
# the recorded study's settings, a history of the same source, a piloted and a fixed load sweep over both builds, and
# extra rounds for noisy cells.
PLAN = plan.make(configuration.resolve({
    "sources": {"hist": {"kind": "git", "url": "file:///hist", "ref": "good"}},
    "benchmark": {"remeasure": {"enabled": True, "max_rounds": 5}},
    "bisect": {BISECT: STEPS["settings"],
               "seeded": {**{k: v for k, v in STEPS["settings"].items() if k not in ("good", "bad")}, "history": "h",
                          "comparison": "upgrade"}},
    "history": {"h": {"source": "hist", "from": "good", "to": "bad"}},
    "comparisons": {"upgrade": {"baseline": "cpu", "builds": ["cpu-rpc"]}},
    "load": {"piloted": {"builds": ["cpu", "cpu-rpc"]}, "fixed": {"builds": ["cpu", "cpu-rpc"], "rates": [1.0, 0.5]}},
}))
# The tuning study of tests/test_race.py (its fixture ran with flash attention on), on one build, by coordinate
# descent: a chain of five rounds, two candidates each.
TUNE_PLAN = plan.make(configuration.resolve({
    "benchmark": {"defaults": {"flash_attn": "on"}},
    "tune": {"space": {"workload": {"n_prompt": 128, "n_gen": 32}, "objective": OBJECTIVE, "builds": ["cpu"],
                       "space": {"threads": [1, 2], "ubatch_size": [32, 512], "flash_attn": ["off", "on"]},
                       "enumerate": 1, "budget": {"rounds": 5}, "race_rounds": 4, "min_rounds": 2}},
}))
TUNE_KEY = {"study": "space", "build": "cpu", "model": "gemma3-270m"}


class Checkpoint:
    """A checkpoint's recorded records by one part of its key (a round, a step, a build, a commit), or one record for
    every key; ``asked`` is every key asked for, in order: what Snakemake would have waited for."""

    def __init__(self, by: str | None, found: Mapping[Any, Mapping[str, Any]] | Mapping[str, Any]) -> None:
        self.by, self.found, self.asked = by, found, []

    def __call__(self, **key: Any) -> Mapping[str, Any]:
        self.asked.append(key)
        return self.found[key[self.by]] if self.by else self.found


def states(found: list[Mapping[str, Any]], by: str) -> Checkpoint:
    """A chain's checkpoint: its records hold the recorded states."""
    return Checkpoint(by, {index: {"state": state} for index, state in enumerate(found)})


def probes(failed: frozenset[str] = frozenset()) -> Checkpoint:
    """The probe_build checkpoint of the recorded range: every commit built but ``failed``."""
    return Checkpoint("commit", {c["commit"]: {"status": Status.BUILD_FAILED if c["commit"] in failed else Status.OK}
                                 for c in STATES[0]["commits"]})


def never(**key: Any) -> Mapping[str, Any]:
    raise AssertionError(f"a checkpoint nothing waits for was asked for: {key}")


def test_extra_rounds_are_the_planned_ones_then_what_the_remeasure_record_chose() -> None:
    """The recorded disturbed round (round 3 of the ubatch-128 cell) makes the re-measure checkpoint choose that cell
    for a fourth round: its own and its defaults cell's fourth rounds follow the planned ones, nothing of another
    kind; a plan without the checkpoint never waits for it."""
    [busy] = {(r["build"], r["model"], r["base_cell"]) for r in ROUNDS if r["busy"]}
    decision = {"decisions": [{"kind": "bench_cell", "build": busy[0], "model": busy[1], "cell": busy[2],
                               "reason": "disturbed", "why": "python (115 % CPU)", "last_round": PLAN.rounds + 1}]}
    found = chains.measured(PLAN, "bench_cell", Checkpoint(None, decision))
    planned = [c.path for c in PLAN.planned("bench_cell")]
    assert found[:len(planned)] == planned
    extra = {layout.parse("bench_cell", path)["cell"] for path in found[len(planned):]}
    assert extra == {f"{busy[2]}_round-4", f"{PLAN.defaults_cell}_round-4"}
    served = chains.measured(PLAN, "serve_cell", Checkpoint(None, decision))
    assert served == [c.path for c in PLAN.planned("serve_cell")]
    quiet = plan.make(configuration.resolve({"benchmark": {"disturbance": {"action": "drop"}}}))
    assert chains.measured(quiet, "bench_cell", never) == [c.path for c in quiet.planned("bench_cell")]


def test_every_serving_round_reads_its_llama_bench_partner_of_the_same_round() -> None:
    partners = PLAN.serving_partners()
    assert list(partners) == [c.path for c in PLAN.serving.values()]
    for cell in PLAN.serving.values():
        partner = layout.parse("bench_cell", partners[cell.path])
        assert PLAN.bench[(partner["build"], partner["model"], partner["cell"])].round == cell.round


def tune_states() -> list[dict[str, Any]]:
    study = TUNE_PLAN.studies["space"]
    return list(decisions(study, space_measured(study)))


def test_a_tuning_decision_reads_the_one_before_and_every_cell_measured_so_far() -> None:
    """Decision 0 reads the build alone; decision r decision r - 1, the cells it lists as measured and round r's
    candidates, each once: the cells decision r itself then lists as measured."""
    found = tune_states()
    assert len(found) > 2 and found[-1]["ended"]
    assert chains.tune_round_input(TUNE_PLAN, **TUNE_KEY, round_=0, decision=never) == {
        "build": layout.path("build", build="cpu")}
    for round_ in range(1, len(found)):
        asked = chains.tune_round_input(TUNE_PLAN, **TUNE_KEY, round_=round_, decision=states(found, "round"))
        assert asked["previous"] == layout.path("tune_round", **TUNE_KEY, round=round_ - 1)
        measured = TUNE_PLAN.tune_cells("space", "cpu", "gemma3-270m", found[round_]["measured"])
        assert sorted(asked["cells"]) == sorted(c.path for c in measured)
        assert len(set(asked["cells"])) == len(asked["cells"])


def test_a_tuning_chain_is_walked_to_the_decision_that_ended_it_and_no_further() -> None:
    found = tune_states()
    chain = states(found, "round")
    asked = chains.tune_input(TUNE_PLAN, "space", chain)
    assert asked["decisions"] == [layout.path("tune_round", **TUNE_KEY, round=len(found) - 1)]
    assert [key["round"] for key in chain.asked] == list(range(len(found)))
    measured = found[-1]["measured"]
    assert len(asked["cells"]) == len(measured) == 2 * found[-1]["spent"]["rounds"] == 2 * (len(found) - 1)
    assert {layout.parse("tune_cell", path)["cell"] for path in asked["cells"]} == {
        c.id for c in TUNE_PLAN.tune_cells("space", "cpu", "gemma3-270m", measured)}


def test_a_piloted_sweep_measures_the_union_of_its_builds_pilots_at_every_build() -> None:
    """Two builds' pilots: the recorded one, and one that saturated at its third level (the recorded ladder cut
    there): every build measures every level either chose, in every round, so builds and rounds pair."""
    pilot = Checkpoint("build", {"cpu": {"chosen": sorted(PILOT)}, "cpu-rpc": {"chosen": sorted(PILOT[:3])}})
    assert chains.load_levels(PLAN, "piloted", "gemma3-270m", pilot) == sorted(PILOT)
    asked = chains.load_sweep_input(PLAN, "piloted", pilot)
    assert asked["pilots"] == [layout.path("load_pilot", sweep="piloted", build=b, model="gemma3-270m")
                               for b in ("cpu", "cpu-rpc")]
    cells = [layout.parse("load_cell", path) for path in asked["cells"]]
    assert len(cells) == len(set(asked["cells"])) == 2 * len(PILOT) * PLAN.rounds
    for build in ("cpu", "cpu-rpc"):
        rates = {plan.load.rate_of(c["cell"]) for c in cells if c["build"] == build}
        assert rates == set(PILOT)


def test_a_sweep_of_configured_rates_has_no_pilot_to_wait_for() -> None:
    asked = chains.load_sweep_input(PLAN, "fixed", never)
    assert asked["pilots"] == [] and chains.load_levels(PLAN, "fixed", "gemma3-270m", never) == [1.0, 0.5]
    assert [plan.load.rate_of(layout.parse("load_cell", p)["cell"]) for p in asked["cells"]][:2] == [0.5, 0.5]


def test_a_probe_is_measured_beside_both_endpoints() -> None:
    last = len(STATES[0]["commits"]) - 1
    for state in STATES[:-1]:
        target = state["next"]["target"]
        assert bisect.measured(state) == [0, last, *([target] if target is not None else [])]


def test_a_bisect_step_reads_the_state_before_it_and_the_measurement_it_asked_for() -> None:
    """Step 2 of the recorded study: step 1 had given probe 0 (the endpoints alone) a fourth round, so step 2 reads
    both endpoints' builds and their rounds 1-4."""
    asked = chains.bisect_step_input(PLAN, BISECT, 2, states(STATES, "step"), probes())
    assert asked["previous"] == layout.path("bisect_step", study=BISECT, step=1)
    commits = [c["commit"] for c in STATES[0]["commits"]]
    assert asked["builds"] == [chains.probe_path(PLAN.bisects[BISECT], c) for c in (commits[0], commits[-1])]
    cells = [layout.parse("bisect_cell", path) for path in asked["cells"]]
    assert sorted((c["probe"], c["cell"].rsplit("_round-", 1)[-1]) for c in cells) == sorted(
        ("0", r) for r in ["t2_b2048_ub512_ngl99_fa-auto_ctk-f16_ctv-f16_p0_n32_d0_r3", "2", "3", "4"] * 2)


def test_the_first_bisect_step_reads_what_chooses_its_range_and_cells() -> None:
    assert chains.bisect_step_input(PLAN, BISECT, 0, never, never) == {}
    assert chains.bisect_step_input(PLAN, "seeded", 0, never, never) == {
        "history": layout.path("history_study", study="h"), "comparisons": layout.path("comparisons")}


def test_a_bisect_study_lists_every_cell_its_steps_measured_once() -> None:
    """The duplicate-cells case: step 1 asked for probe 0's rounds 1-3, step 2 for its rounds 1-4 again. The
    study's input is exactly the recorded study's 35 cells and 5 builds, each once (asked for step by step, the
    cells were 41: the 6 of probe 0's first three rounds twice)."""
    chain = states(STATES, "step")
    asked = chains.bisect_study_input(PLAN, BISECT, chain, probes())
    assert asked["steps"] == [layout.path("bisect_step", study=BISECT, step=n) for n in range(len(STATES))]
    assert [key["step"] for key in chain.asked] == list(range(len(STATES)))
    root = f"{layout.RESULTS}/bisect/{BISECT}/cells/"
    assert sorted(asked["cells"]) == [root + cell for cell in MEASURED["cells"]]
    assert len(asked["cells"]) == MEASURED["counted"] == 35
    asked_per_step = sum(len(chains.bisect_measurement(PLAN, BISECT, s, probes())[1]) for s in STATES[:-1])
    assert asked_per_step == 41
    assert asked["builds"] == sorted(chains.probe_path(PLAN.bisects[BISECT], c) for c in MEASURED["builds"])


def test_a_commit_that_did_not_build_has_its_build_read_and_no_cells() -> None:
    """Probe 2's commit failed to build: the step reads its build's record (the failure is its result) and measures
    only the endpoints."""
    state = STATES[3]
    broken = state["commits"][state["next"]["target"]]["commit"]
    builds, cells = chains.bisect_measurement(PLAN, BISECT, state, probes(frozenset({broken})))
    assert chains.probe_path(PLAN.bisects[BISECT], broken) in builds and len(builds) == 3
    assert len(cells) == 2 * 3 and not any(broken in path for path in cells)


@pytest.mark.parametrize("failed", [0, 1])
def test_a_history_measures_every_commit_of_its_range_that_built(failed: int) -> None:
    """The recorded bisect's 13 commits as a history's range, one of them (or none) not building."""
    commits = [c["commit"] for c in STATES[0]["commits"]]
    broken = frozenset(commits[5:5 + failed])
    asked = chains.history_study_input(PLAN, "h", Checkpoint(None, {"commits": STATES[0]["commits"]}), probes(broken))
    assert asked["range"] == layout.path("history_range", study="h")
    assert asked["builds"] == [chains.probe_path(PLAN.histories["h"], c) for c in commits]
    cells = [layout.parse("history_cell", path) for path in asked["cells"]]
    rounds = PLAN.histories["h"].settings["rounds"]
    assert len(cells) == len(set(asked["cells"])) == (len(commits) - failed) * rounds
    assert {c["commit"] for c in cells} == set(commits) - broken

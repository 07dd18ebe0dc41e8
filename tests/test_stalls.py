"""Stalled repetitions and servers seen: the rules of derive/samples.stalls and serving_stalls on recorded real runs.

A process the VM pauses, a signal stops or the clock steps under inflates one of
llama-bench's wall-clock repetitions while the machine-wide shares see nothing;
a llama-server stopped while requests wait on it inflates their TTFT and latency.
The rules are checked here on recorded runs (``tests/data/README.md`` says how each
was made): quiet ones must never be flagged, a run stopped by SIGSTOP inside a
timed repetition, or with requests in flight, must be. The llama-bench rule through
Snakemake, with a real signal, is ``test_rounds.py::test_a_stopped_llama_bench_is_seen_and_its_round_measured_again``;
the serving rule on a live server, ``test_serve_cell.py::test_a_server_stopped_mid_requests_is_disturbed``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from llamabench.derive import samples

DATA = Path(__file__).parent / "data"


def quiet_repetitions() -> list[list[float]]:
    """Every recorded quiet llama-bench test's repetition times (ns, or 1/t/s where only rates were kept)."""
    tests = [rec["samples_ns"] for rec in json.loads((DATA / "quiet-repetitions-0c1e570.json").read_text())]
    for path in DATA.glob("llama-bench-*.json"):
        tests += [rec["samples_ns"] for rec in json.loads(path.read_text())]
    tests += [[1 / v for v in json.loads(text)] for text in recorded_rounds(busy=False)["samples_ts"]]
    return [list(map(float, t)) for t in tests if len(t) > 1]


def recorded_rounds(busy: bool) -> pd.DataFrame:
    """The recorded default run's rounds, those that started on a quiet machine or (``busy``) the one another
    process at 115 % CPU shared."""
    rounds = pd.read_csv(DATA / "rounds-0c1e570-cpu-gemma3-270m.csv")
    return rounds[rounds["busy"].notna() == busy]


def test_no_recorded_quiet_test_has_a_repetition_far_from_its_median() -> None:
    """The false-alarm rate of the repetition rule, measured: 0 of every recorded quiet test (53; the largest
    repetition is 1.24× its test's median, the rule's limit 1.5×)."""
    tests = quiet_repetitions()
    flagged = [t for t in tests if samples.stalls([], [{"n_prompt": 0, "n_gen": 32, "samples_ns": t}])]
    worst = max(max(t) / sorted(t)[len(t) // 2] for t in tests)
    assert len(tests) >= 40 and flagged == [] and worst < samples.REPETITION_FACTOR, (len(tests), worst)


def test_the_recorded_round_another_process_shared_has_its_pp_repetition_flagged() -> None:
    """The busy round's first pp128 repetition ran at 351 t/s against 608 and 634: 1.73× the median time."""
    flagged = [samples.stalls([], [{"n_prompt": int(row.test[2:]) if row.test.startswith("pp") else 0,
                                    "n_gen": int(row.test[2:]) if row.test.startswith("tg") else 0,
                                    "samples_ns": [1 / v for v in json.loads(row.samples_ts)]}])
               for row in recorded_rounds(busy=True).itertuples()]
    assert flagged == [["repetition 1 of pp128 took 1.7× its median"], []]


def recorded_marks(name: str) -> dict:
    return json.loads((DATA / f"stall-{name}-0c1e570-cpu-gemma3-270m.json").read_text())


def test_a_quiet_runs_marks_flag_nothing() -> None:
    run = recorded_marks("quiet")
    assert samples.stalls(run["interference"]["marks"], run["records"]) == []
    assert samples.disturbed(run, 0.25) is None


def test_a_run_stopped_inside_a_repetition_is_disturbed_though_no_other_process_ran() -> None:
    """SIGSTOP for 3 s in generation run 2: the machine-wide shares stay quiet, the marks and the repetition
    times do not."""
    run = recorded_marks("sigstop")
    window = run["interference"]
    assert window["others_share"] < 0.25 and window["steal_share"] < 0.25
    reasons = samples.stalls(window["marks"], run["records"])
    assert any("generation run 2/3" in r and "of the CPU" in r for r in reasons), reasons
    assert any(r.startswith("repetition 2 of tg") for r in reasons), reasons
    assert samples.disturbed(run, 0.25)


def test_a_stepped_wall_clock_is_a_disturbance() -> None:
    """The quiet run's marks with the wall clock moved 2 s forward from generation run 2 on: llama-bench's
    own clock would have stretched that repetition."""
    marks = [list(m) for m in recorded_marks("quiet")["interference"]["marks"]]
    start = next(i for i, m in enumerate(marks) if "generation run 2/" in m[0])
    for mark in marks[start + 1:]:
        mark[2] += 2.0
    assert any("wall clock stepped +2.00 s" in r for r in samples.stalls(marks, []))


def recorded_serving(name: str) -> dict:
    return json.loads((DATA / f"serving-stall-{name}-0c1e570-cpu-gemma3-270m.json").read_text())


def test_a_quiet_serving_runs_readings_flag_nothing() -> None:
    run = recorded_serving("quiet")
    assert samples.serving_stalls(run["interference"]["server_cpu"], run["requests"]) == []
    assert samples.disturbed(run, 0.25) is None


def test_a_server_stopped_with_requests_in_flight_is_disturbed_though_no_other_process_ran() -> None:
    """SIGSTOP for 2 s from 1 s into the requests: the machine-wide shares stay quiet, the server's readings do
    not (it used no CPU for about 2 s while a request waited on it)."""
    run = recorded_serving("sigstop")
    window = run["interference"]
    assert window["others_share"] < 0.25 and window["steal_share"] < 0.25
    reasons = samples.serving_stalls(window["server_cpu"], run["requests"])
    assert len(reasons) == 1 and reasons[0].startswith("the server used 0% of a core for 1.9"), reasons
    assert "from 1.0" in reasons[0] or "from 1.1" in reasons[0], reasons
    assert reasons[0] in samples.disturbed(run, 0.25)


def test_a_stepped_wall_clock_while_serving_is_a_disturbance() -> None:
    """The quiet run's readings with the wall clock moved 2 s forward halfway through."""
    run = recorded_serving("quiet")
    readings = [list(r) for r in run["interference"]["server_cpu"]]
    for reading in readings[len(readings) // 2:]:
        reading[1] += 2.0
    reasons = samples.serving_stalls(readings, run["requests"])
    assert len(reasons) == 1 and "wall clock stepped +2.00 s" in reasons[0], reasons


def test_readings_missing_for_half_a_second_with_requests_in_flight_mean_the_client_was_paused() -> None:
    """The quiet run's readings with ten in a row left out halfway through: the server kept computing, but the
    client that reads it (and times the requests) did not run."""
    run = recorded_serving("quiet")
    readings = run["interference"]["server_cpu"]
    middle = len(readings) // 2
    reasons = samples.serving_stalls(readings[:middle] + readings[middle + 10:], run["requests"])
    assert len(reasons) == 1 and reasons[0].startswith("no reading of the server for 0.5"), reasons


def test_a_serving_record_made_before_the_server_was_read_flags_nothing() -> None:
    run = recorded_serving("sigstop")
    window = {k: v for k, v in run["interference"].items() if k != "server_cpu"}
    assert samples.disturbed({**run, "interference": window}, 0.25) is None

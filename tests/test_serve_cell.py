"""Serving cells with the real llama-server: measured TTFT, prompt lengths, cache modes, failures, cleanup."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from llamabench.core import phases
from llamabench.derive import latency, samples
from llamabench.measure import llama_server

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake

SMALL = {"threads": 2, "batch_size": 2048, "ubatch_size": 512, "n_gpu_layers": 99, "flash_attn": "auto",
         "ctx_size": 2048, "parallel": 2, "prompt_tokens": 32, "max_tokens": 8, "concurrency": 1, "requests": 3,
         "cache": "cold"}


def server(bin_dir: Path) -> Path:
    return bin_dir / "llama-server"


def servers_on(model: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"llama-server -m {model}"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def test_real_cell_measures_ttft_on_prompts_of_exact_length(bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    result = llama_server.measure(server(bin_dir), gemma, SMALL, tmp_path / "serve.log")
    assert result["status"] == "ok", result["error"]
    assert len(result["requests"]) == 3
    for req in result["requests"]:
        timings = req["timings"]
        assert timings["prompt_n"] == req["prompt_tokens"] == 32  # BOS included, nothing added by the server
        assert timings["cache_n"] == 0  # cold: every prompt processed in full
        assert timings["predicted_n"] == 8 and req["text_chunks"] >= 1
        # The client's clock includes the server's prompt processing: it can never be shorter.
        assert req["ttft_ms"] >= timings["prompt_ms"]
        assert req["e2e_ms"] > req["ttft_ms"]
    assert "--host 127.0.0.1" in result["command_line"] and "-np 2" in result["command_line"]
    assert result["props"]["total_slots"] == 2
    assert not servers_on(gemma)
    # The sampler ran over the whole cell: the server's load, the warm-up, the measured requests, its stop.
    marks = [m["label"] for m in result["samples"]["marks"]]
    assert marks == [phases.BEFORE, "load", "warmup", phases.REQUESTS, "stop", phases.END]
    assert result["samples"]["host"]["t"] and result["samples"]["energy"] is None  # no GPU asked for


def test_every_slot_is_warmed_until_steady_so_no_measured_request_is_a_cold_outlier(
        bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    """Without the warm-up the server sends the first measured request to its coldest slot; with it, each of
    the two slots was served until two TTFTs agreed (recorded apart) and every measured TTFT is near the median."""
    params = {**SMALL, "prompt_tokens": 128, "requests": 8}
    result = llama_server.measure(server(bin_dir), gemma, params, tmp_path / "serve.log")
    assert result["status"] == "ok", result["error"]
    slots = [w["slot"] for w in result["warmup"]]
    assert set(slots) == {0, 1} and all(slots.count(s) >= 2 for s in (0, 1))
    ttfts = [r["ttft_ms"] for r in result["requests"]]
    median = sorted(ttfts)[len(ttfts) // 2]
    assert max(ttfts) < 2 * median, ttfts
    assert 0 <= result["interference"]["others_share"] <= 1 and result["interference"]["measured_s"] > 0


def test_warm_cells_reuse_the_primed_prefix(bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    params = {**SMALL, "prompt_tokens": 64, "cache": "warm", "parallel": 1}
    result = llama_server.measure(server(bin_dir), gemma, params, tmp_path / "serve.log")
    assert result["status"] == "ok", result["error"]
    assert all(req["timings"]["cache_n"] > 0 for req in result["requests"])
    assert "-cram" not in result["command"]


def failed_cell(bin_dir: Path, model: Path, params: dict[str, Any], log: Path) -> dict[str, Any]:
    result = llama_server.measure(server(bin_dir), model, params, log)
    assert result["status"] == "failed"
    assert result["server_log_tail"] and str(log) in result["error"]
    assert not servers_on(model), "a failed server was left running"
    return result


def test_a_server_stopped_mid_requests_is_disturbed(bin_dir: Path, gemma: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGSTOP for 2 s from 0.5 s into the measured requests: the request in flight waits on a server that
    computes nothing, and samples.disturbed says so by the server's own readings (max_share 1.0 leaves the
    machine-wide shares out: other work on this machine must not decide the test). The same cell untouched is not
    disturbed."""
    params = {**SMALL, "prompt_tokens": 128, "max_tokens": 16, "requests": 8}
    quiet = llama_server.measure(server(bin_dir), gemma, params, tmp_path / "quiet.log")
    assert quiet["status"] == "ok", quiet["error"]
    assert samples.disturbed(quiet, 1.0) is None
    measured = llama_server.requests_at

    def stopped_at(base: str, server_pid: int, *args: Any) -> dict[str, Any]:
        def pause() -> None:
            psutil.Process(server_pid).suspend()
            time.sleep(2.0)
            psutil.Process(server_pid).resume()

        timer = threading.Timer(0.5, pause)
        timer.start()
        try:
            return measured(base, server_pid, *args)
        finally:
            timer.join()

    monkeypatch.setattr(llama_server, "requests_at", stopped_at)
    stopped = llama_server.measure(server(bin_dir), gemma, params, tmp_path / "stopped.log")
    assert stopped["status"] == "ok", stopped["error"]
    assert max(r["e2e_ms"] for r in stopped["requests"]) > 2000  # the stop held a request
    why = samples.disturbed(stopped, 1.0)
    assert why and "the server used 0% of a core for 1.9" in why, why


def test_bad_flag_fails_the_cell_with_the_server_log(bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    result = failed_cell(bin_dir, gemma, {**SMALL, "flash_attn": "sometimes"}, tmp_path / "serve.log")
    assert "exited" in result["error"]


def test_unreadable_model_fails_the_cell(bin_dir: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model")
    result = failed_cell(bin_dir, bogus, SMALL, tmp_path / "serve.log")
    assert "exited" in result["error"]


def test_port_taken_fails_the_cell(bin_dir: Path, gemma: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        monkeypatch.setattr(llama_server, "free_port", lambda: holder.getsockname()[1])
        result = failed_cell(bin_dir, gemma, SMALL, tmp_path / "serve.log")
    assert "exited" in result["error"]


def test_sigterm_to_the_step_stops_the_server(bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    """Cancelling the job signals its step; the server runs in its own session, so only cleanup stops it."""
    params = {**SMALL, "requests": 500, "max_tokens": 64}
    code = (
        "import sys, json, types; from pathlib import Path; from llamabench import entry;"
        "from llamabench.measure import llama_server;"
        "smk = types.SimpleNamespace(log=[sys.argv[1]]);"
        "entry.run_step(smk, lambda s: llama_server.measure(Path(sys.argv[2]), Path(sys.argv[3]),"
        " json.loads(sys.argv[4]), Path(s.log[0])))"
    )
    step = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "step.log"), str(server(bin_dir)),
                             str(gemma), json.dumps(params)],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    log = tmp_path / "step.log"
    try:
        deadline = time.monotonic() + 120
        while not (log.exists() and "prompt eval time" in log.read_text(errors="replace")):
            assert time.monotonic() < deadline and step.poll() is None, "the server never served"
            time.sleep(0.2)
        assert servers_on(gemma)
        step.send_signal(signal.SIGTERM)
        assert step.wait(timeout=60) == 128 + signal.SIGTERM
        assert not servers_on(gemma), "llama-server outlived its step"
    finally:
        step.kill()
        for pid in servers_on(gemma):
            os.kill(pid, signal.SIGKILL)


def test_a_percentile_from_too_few_requests_is_the_maximum() -> None:
    assert latency.tail([1.0, 2.0, 9.0], 90, needed=10) == (9.0, True)
    value, is_max = latency.tail([float(v) for v in range(1, 101)], 90, needed=10)
    assert not is_max and 89 < value < 92
    assert latency.tail([], 99, needed=1) == (None, False)

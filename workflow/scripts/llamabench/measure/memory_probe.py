"""What a context of a given size takes, without filling it: one short completion at ``-c N``.

llama-bench sizes its context to prompt + generation + depth, so a 32k-token
context costs a 32k-token prefill there. llama.cpp allocates the whole K/V cache
and reserves the compute buffer for the worst micro-batch when the context is
made, so a one-token completion with ``-c N`` shows the same buffers in its log
(``-v``) at a fraction of the time. Its resident set counts what was touched: the
mapped model, the K/V cache (cleared when made), and of the compute buffer the
share its few prompt tokens used.
"""

from __future__ import annotations

import shlex
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llamabench.core import axes
from llamabench.core.status import Status
from llamabench.measure import llama_bench, machine_lock, memory_use, processes

PROMPT = "Hello"
PROMPT_TOKENS = 2  # BOS + "Hello" in the vocabularies used here; what the probe's compute pages see
POLL_S = 0.005  # a probe lives a fraction of a second to a few: read often


def command(exe: Path, model: Path, params: Mapping[str, Any]) -> list[str]:
    """llama-completion (llama-cli before late 2025) for one token at the probe's context and settings."""
    cmd = [str(exe), "-m", str(model), "-c", str(params["ctx_size"]), "-b", str(params["batch_size"]),
           "-ub", str(params["ubatch_size"]), "-ctk", params["cache_type_k"], "-ctv", params["cache_type_v"],
           "-fa", str(params["flash_attn"]), "-t", str(params["threads"]), "-ngl", str(params["n_gpu_layers"]),
           "-np", str(params.get("parallel", 1)), "-n", str(params.get("n_predict", 1)), "-p", PROMPT, "--temp", "0",
           "-no-cnv", "-v"]
    if params.get("load_mode", "auto") != "auto":  # the common arguments, spelled as llama-server spells them
        spelling = axes.spelling("load_mode", axes.LLAMA_SERVER, processes.help_text(exe))
        cmd += spelling.arguments("load_mode", params["load_mode"], "llama-completion")
    return cmd


def measure(cmd: list[str], log_path: Path, timeout: float = 300) -> dict[str, Any]:
    """Run the probe under the machine lock: its peak RSS (``VmHWM``, read every ``POLL_S``: ``wait4``'s peak
    of a child forked from a large Python process starts at the parent's size) and the resident split at the
    largest resident set read. Its buffers are in its log (derive/buffers.py)."""
    start = time.time()
    with machine_lock.held(shlex.join(cmd[:1])), open(log_path, "w") as log:
        proc = processes.spawn(cmd, stdout=subprocess.DEVNULL, stderr=log)
        timer = threading.Timer(timeout, processes.kill_group, args=(proc,))
        timer.start()
        with memory_use.watching(proc.pid, POLL_S) as peak:
            try:
                proc.wait()
            except BaseException:
                processes.kill_group(proc)
                proc.wait()
                raise
            finally:
                timer.cancel()
    exit_status = proc.returncode
    result: dict[str, Any] = {"command_line": shlex.join(cmd), "exit_status": exit_status,
                              "duration_s": round(time.time() - start, 2),
                              "peak_rss_mib": peak.get("peak_rss_mib"), "resident_at_peak": dict(peak),
                              "status": Status.OK}
    if exit_status != 0:
        result["status"] = Status.OUT_OF_MEMORY if llama_bench.out_of_memory(log_path) else Status.FAILED
        result["error"] = f"exit status {exit_status}"
    return result

"""The one-shot tool (llama-completion, llama-cli in older trees): one greedy generation, its text and speed.

The smoke runs of the lab report ("run the model") and of an RPC topology go through here."""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

from llamabench.core.status import Status
from llamabench.measure import machine_lock, processes

log = logging.getLogger(__name__)


def command(exe: Path, model: Path, prompt: str, n_predict: int, seed: int, threads: int) -> list[str]:
    """One-shot generation. ``-no-cnv`` keeps tools that auto-enable chat mode from waiting on stdin."""
    cmd = [str(exe), "-m", str(model), "-p", prompt, "-n", str(n_predict), "-s", str(seed),
           "-t", str(threads), "--temp", "0"]
    if "-no-cnv" in processes.help_text(exe):
        cmd.append("-no-cnv")
    return cmd


def generate(cmd: list[str], log_path: Path, timeout: float = 600) -> dict[str, Any]:
    """Generate once; a failure is recorded (status, error) like a failed benchmark cell, not raised."""
    tool = Path(cmd[0]).name
    try:
        with machine_lock.held(f"{tool} generation"):
            out = processes.run(cmd, timeout)
        stdout, stderr, error = out.stdout, out.stderr, None
        if out.returncode != 0:
            error = f"{tool} failed with exit status {out.returncode}"
    except subprocess.TimeoutExpired as err:
        stdout, stderr = _text(err.stdout), _text(err.stderr)
        error = f"{tool} did not finish within {timeout:.0f} s"
    timings = [line.strip() for line in stderr.splitlines() if "_perf_" in line and "time" in line]
    if error is None and (not stdout.strip() or not timings):
        error = f"{tool} produced no text or no timing lines"
    # The command and the outcome too: llama.cpp logs from a thread of its own, and a
    # tool that fails early can exit before that thread has written anything.
    with open(log_path, "a") as handle:
        handle.write(f"$ {shlex.join(cmd)}\n{stderr}{error or 'ok'}\n")
    return {
        "command": [str(part) for part in cmd],
        "status": Status.FAILED if error else Status.OK,
        "error": error,
        "text": stdout,
        "timing_lines": timings,
        "tokens_per_second": parse_eval_speed(timings),
    }


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def parse_eval_speed(lines: list[str]) -> dict[str, float]:
    """From ``llama_perf_context_print: eval time = ... ( ... ms per token, 52.10 tokens per second)``."""
    speeds = {}
    for line in lines:
        match = re.search(r"(prompt eval|eval) time\s*=.*?([\d.]+) tokens per second", line)
        if match:
            speeds["prompt" if match.group(1) == "prompt eval" else "generation"] = float(match.group(2))
    return speeds

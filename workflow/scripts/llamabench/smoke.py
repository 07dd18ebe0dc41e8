"""The lab report's "run the model" step: one fixed prompt, so a user sees the model answer."""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any


log = logging.getLogger(__name__)


def command(exe: Path, model: Path, prompt: str, n_predict: int, seed: int, threads: int) -> list[str]:
    """One-shot generation. ``-no-cnv`` keeps tools that auto-enable chat mode from waiting on stdin."""
    try:
        probe = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
        help_text = probe.stdout + probe.stderr
    except (OSError, subprocess.TimeoutExpired):
        help_text = ""  # the run itself will fail and be recorded with its reason
    cmd = [str(exe), "-m", str(model), "-p", prompt, "-n", str(n_predict), "-s", str(seed),
           "-t", str(threads), "--temp", "0"]
    if "-no-cnv" in help_text:
        cmd.append("-no-cnv")
    return cmd


def run(cmd: list[str], log_path: Path, timeout: float = 600) -> dict[str, Any]:
    """Generate once; a failure is recorded (status, error) like a failed benchmark cell, not raised."""
    log.info("$ %s", shlex.join(cmd))
    tool = Path(cmd[0]).name
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        stdout, stderr, error = out.stdout, out.stderr, None
        if out.returncode != 0:
            error = f"{tool} failed with exit status {out.returncode}"
    except subprocess.TimeoutExpired as err:
        stdout, stderr = _text(err.stdout), _text(err.stderr)
        error = f"{tool} did not finish within {timeout:.0f} s"
    with open(log_path, "a") as handle:
        handle.write(stderr)
    timings = [line.strip() for line in stderr.splitlines() if "_perf_" in line and "time" in line]
    if error is None and (not stdout.strip() or not timings):
        error = f"{tool} produced no text or no timing lines"
    return {
        "command": cmd,
        "status": "failed" if error else "ok",
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

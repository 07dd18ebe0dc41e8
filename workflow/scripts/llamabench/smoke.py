"""The lab report's "run the model" step: one fixed prompt, so a user sees the model answer."""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

from llamabench import commands, machine_lock, records
from llamabench.entry import announce_failure

log = logging.getLogger(__name__)

# Bump when what a smoke run measures or records changes: every smoke run reruns.
RULE_VERSION = 1


def smoke(smk: Any) -> None:
    """Rule ``smoke``: one greedy generation per build and model, recorded even when it fails."""
    build = records.read(smk.input.build, "build")
    records.read(smk.input.model_manifest, "model")
    exe = Path(build["bin_dir"]) / build["binaries"]["completion"]
    cfg = smk.params.smoke
    cmd = command(exe, Path(smk.input.model), cfg["prompt"], cfg["n_predict"], cfg["seed"], cfg["threads"])
    label = f"{smk.wildcards.build}/{smk.wildcards.model}"
    with machine_lock.held(f"smoke run {label}") as waited:
        result = generate(cmd, Path(smk.log[0]), timeout=smk.config["smoke"]["timeout"])
    announce_failure(f"smoke run {label}", result)
    records.write(smk.output[0], "smoke", {"build": smk.wildcards.build, "model": smk.wildcards.model,
                                           "lock_wait_s": round(waited, 3), **result})


def command(exe: Path, model: Path, prompt: str, n_predict: int, seed: int, threads: int) -> list[str]:
    """One-shot generation. ``-no-cnv`` keeps tools that auto-enable chat mode from waiting on stdin."""
    cmd = [str(exe), "-m", str(model), "-p", prompt, "-n", str(n_predict), "-s", str(seed),
           "-t", str(threads), "--temp", "0"]
    if "-no-cnv" in commands.help_text(exe):
        cmd.append("-no-cnv")
    return cmd


def generate(cmd: list[str], log_path: Path, timeout: float = 600) -> dict[str, Any]:
    """Generate once; a failure is recorded (status, error) like a failed benchmark cell, not raised."""
    tool = Path(cmd[0]).name
    try:
        # Its own session: an interrupted step stops it (subprocess.run kills it), not the terminal.
        with machine_lock.held(f"{tool} generation"):
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
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

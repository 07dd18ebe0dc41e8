"""Run one benchmark cell: llama-bench with exactly the cell's parameters.

A cell's file always gets written, also when llama-bench fails: a failed
measurement is a result the report must show (with its reason), and the
aggregate must not be blocked by it. The raw llama-bench records are kept
as they came, next to what explains them (command, host, times, peak RSS).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from llamabench import files, matrix

log = logging.getLogger(__name__)


def command(bench_exe: Path, model: Path, params: dict[str, Any], delay: int) -> list[str]:
    cmd = [str(bench_exe), "-m", str(model), "-o", "json", *matrix.llama_bench_args(params)]
    if delay:
        cmd += ["--delay", str(delay)]
    return cmd


def run_cell(
    cmd: list[str],
    log_path: Path | None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run llama-bench; return its records, exit status and the OS's peak-RSS accounting."""
    stderr_path = log_path or Path(os.devnull)
    start_wall, start = files.now_iso(), time.time()
    log.info("$ %s", shlex.join(cmd))
    with tempfile.TemporaryFile("w+") as out, open(stderr_path, "a") as err_out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err_out, text=True)
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, expire) if timeout else None
        try:
            if timer:
                timer.start()
            # wait4, not wait: it returns this child's own resource usage (peak RSS).
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()  # an interrupted run must not leave llama-bench behind
            proc.wait()
            raise
        finally:
            if timer:
                timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read()
    end = time.time()
    peak_kib = usage.ru_maxrss
    result: dict[str, Any] = {
        "command": cmd,
        "command_line": shlex.join(cmd),
        "start": start_wall,
        "start_epoch": start,
        "end_epoch": end,
        "duration_s": round(end - start, 3),
        "exit_status": proc.returncode,
        "timed_out": timed_out.is_set(),
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }
    try:
        records = json.loads(stdout) if stdout.strip() else []
    except json.JSONDecodeError as err:
        records = []
        result["stdout"] = stdout[-4000:]
        result["parse_error"] = str(err)
    result["records"] = records
    ok = proc.returncode == 0 and bool(records) and "parse_error" not in result
    result["status"] = "ok" if ok else "failed"
    if not ok:
        result["error"] = failure_reason(proc.returncode, stderr_path, result)
    return result


def failure_reason(returncode: int, stderr_path: Path, result: dict[str, Any]) -> str:
    """The lines of llama-bench's stderr that say what went wrong, for the report."""
    lines: list[str] = []
    try:
        lines = [line.strip() for line in Path(stderr_path).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        pass
    flagged = [line for line in lines if "error" in line.lower() or "failed" in line.lower()]
    detail = "; ".join((flagged or lines)[-3:])
    if result.get("timed_out"):
        head = "timed out (benchmark.timeout) and was killed"
    elif returncode < 0:
        head = f"killed by signal {-returncode}"
    elif returncode:
        head = f"exit status {returncode}"
    elif "parse_error" in result:
        head = f"unreadable JSON output ({result['parse_error']})"
    else:
        head = "no benchmark records in the output"
    return f"{head}: {detail}" if detail else head

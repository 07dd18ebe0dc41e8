"""llama-bench, run and timed: one measurement of one cell, with its records, exit status, peak RSS and samples.

Every axis is explicit on the command line, spelled for the tree at hand
(:func:`arguments`, from the axis registry core/axes.py and the tool's ``--help``).
A failure is a result, never an exception: its reason comes from llama.cpp's own
log, and an allocation that failed is ``out_of_memory``, an expected outcome of a
sweep. llama-bench runs in a session of its own, so only this code stops it, on
every path.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from llamabench.core import axes, files, phases
from llamabench.core.status import Status
from llamabench.measure import console, interference, machine_lock, memory_use, processes, sampler

log = logging.getLogger(__name__)

# JSON on stdout; on stderr the phase markers (the sampler's energy boundaries) and llama.cpp's own log,
# which says where the layers went, how big each buffer was, and why an allocation failed. It is
# written while the model loads and the context is made, never inside a timed repetition.
LOGGING = ["-o", "json", "--progress", "-v"]

# How often the resident split is read (/proc/<pid>/status: microseconds a read).
RESIDENT_POLL_S = 0.5
# What llama.cpp logs when memory runs out: ggml's CPU allocator, the CUDA allocator, llama's buffers.
OOM_PATTERNS = ("insufficient memory", "out of memory", "failed to allocate", "cudamalloc failed",
                "std::bad_alloc", "unable to allocate")


def arguments(params: Mapping[str, Any], help_text: str = "") -> list[str]:
    """A benchmark cell's parameters as this llama-bench's flags (``help_text``: its ``--help``)."""
    return axes.arguments(params, axes.BENCHMARK, axes.LLAMA_BENCH, help_text)


def command(bench_exe: Path, model: Path, params: Mapping[str, Any], delay: int) -> list[str]:
    cmd = [str(bench_exe), "-m", str(model), *LOGGING, *arguments(params, processes.help_text(bench_exe))]
    if delay:
        cmd += ["--delay", str(delay)]
    return cmd


def measure(
    cmd: list[str],
    log_path: Path | None,
    timeout: float | None = None,
    on_progress: Callable[[str], None] | None = None,
    gpus: bool = False,
    interval_s: float = 0.1,
    helpers: tuple[Callable[[], float], set[int]] | None = None,
    what: str = "llama-bench",
) -> dict[str, Any]:
    """Run llama-bench; return its records, exit status, the OS's peak-RSS accounting, what the sampler saw and
    what else used the machine meanwhile (measure/interference.py).

    llama-bench's stderr passes through this process on its way to the log, and each
    ``--progress`` line is a mark for the sampler (each GPU's energy counter) and is
    handed to ``on_progress`` as it arrives (an RPC cell reads the link's byte
    counters there) and shown on the console as ``what``'s phase, at a calm rate.
    With ``gpus``, the node's GPUs are sampled too. ``helpers``: the
    CPU-seconds reader and the pids of other processes that are part of the
    measurement (an RPC cell's workers), so that they do not count as disturbance.
    The resident split is read every ``RESIDENT_POLL_S`` (measure/memory_use.py).
    """
    stderr_path = log_path or Path(os.devnull)
    start_wall, start = files.now_iso(), time.time()
    log.info("$ %s", shlex.join(cmd))
    with machine_lock.held(shlex.join(cmd[:1])), tempfile.TemporaryFile("w+") as out, \
            open(stderr_path, "a") as err_out, sampler.sampling(interval_s, gpus) as samples:

        shown = console.Ticker(what)

        timeline = interference.Timeline(computes=helpers is None)

        def marked(line: str) -> None:
            timeline.mark(line)
            samples.mark(line)
            shown.update(line.removeprefix("llama-bench: "), phases.fraction(line))
            if on_progress:
                on_progress(line)

        seen = interference.Window()
        helped = helpers[0]() if helpers else 0.0
        # Ctrl-C in the terminal or a cancelled job reaches only this step, whose cleanup below stops
        # llama-bench; a killed step takes it along (processes.spawn).
        proc = processes.spawn(cmd, stdout=out, stderr=subprocess.PIPE, text=True, errors="replace")
        timeline.pid = proc.pid
        relay = threading.Thread(target=_relay, args=(proc.stderr, err_out, marked), daemon=True)
        relay.start()
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            processes.kill_group(proc)

        timer = threading.Timer(timeout, expire) if timeout else None
        with memory_use.watching(proc.pid, RESIDENT_POLL_S) as resident:
            try:
                if timer:
                    timer.start()
                # wait4, not wait: it returns this child's own resource usage (peak RSS).
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:
                processes.kill_group(proc)  # an interrupted run must not leave llama-bench behind
                proc.wait()
                raise
            finally:
                if timer:
                    timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        seen.measured(usage.ru_utime + usage.ru_stime + (helpers[0]() - helped if helpers else 0.0))
        disturbance = seen.result(samples.gpu_others({proc.pid, *(helpers[1] if helpers else ())}))
        relay.join()
        timeline.mark(phases.END, usage.ru_utime + usage.ru_stime)
        disturbance["marks"] = timeline.marks
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
        "resident_at_peak": dict(resident),
        "samples": samples.result(),
        "interference": disturbance,
    }
    try:
        records = json.loads(stdout) if stdout.strip() else []
    except json.JSONDecodeError as err:
        records = []
        result["stdout"] = stdout[-4000:]
        result["parse_error"] = str(err)
    result["records"] = records
    ok = proc.returncode == 0 and bool(records) and "parse_error" not in result
    result["status"] = Status.OK if ok else Status.FAILED
    if not ok:
        result["error"] = failure_reason(proc.returncode, stderr_path, result)
        if out_of_memory(stderr_path):
            result["status"] = Status.OUT_OF_MEMORY
    return result


def out_of_memory(stderr_path: Path) -> bool:
    """Whether llama.cpp's log says an allocation failed: an expected outcome of a sweep (too many layers on
    the GPU, too long a context), not a crash."""
    try:
        text = Path(stderr_path).read_text(errors="replace").lower()
    except OSError:
        return False
    return any(pattern in text for pattern in OOM_PATTERNS)


def skipped(cmd: list[str], reason: str, status: Status = Status.SKIPPED) -> dict[str, Any]:
    """The run part of a cell that was not started: this llama-bench cannot express it, or (``status``
    predicted_out_of_memory) it is predicted not to fit; the reason says why."""
    now = time.time()
    return {"command": cmd, "command_line": shlex.join(cmd), "start": files.now_iso(), "start_epoch": now,
            "end_epoch": now, "duration_s": 0.0, "exit_status": 0, "timed_out": False, "peak_rss_mib": 0.0,
            "records": [], "status": status, "error": reason}


def _relay(stream: IO[str], sink: IO[str], on_progress: Callable[[str], None]) -> None:
    for line in stream:
        if line.startswith(phases.MARKER):
            on_progress(line.strip())
        sink.write(line)
        sink.flush()  # the log shows progress as it happens


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
        head = f"killed by signal {-returncode}" + (" (the kernel's out-of-memory killer sends this)"
                                                    if returncode == -signal.SIGKILL else "")
    elif returncode:
        head = f"exit status {returncode}"
    elif "parse_error" in result:
        head = f"unreadable JSON output ({result['parse_error']})"
    else:
        head = "no benchmark records in the output"
    return f"{head}: {detail}" if detail else head

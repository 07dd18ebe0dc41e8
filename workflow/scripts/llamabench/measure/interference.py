"""What else used the machine while a measurement ran: seen over the measured window itself, not before it.

At the start and the end of the window the machine's CPU time counters are read
(``/proc/stat``: busy time of every process, short-lived ones included, and the
time the hypervisor stole from this VM), and so are the CPU times of the
measured processes (the caller's: llama-bench, llama-server, RPC workers), of
this job's own Python process (its sampler and HTTP client threads) and of its
ancestors (the shell that runs the job and Snakemake). What is left of the busy
time belongs to other processes: the disturbance. Shares are of all the
machine's cores over the window, so a busy loop on one of two cores for the
whole window is a share of 0.5. Reading the counters costs two file reads, not a
process scan, so it adds nothing to the measurement.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

TICKS = os.sysconf("SC_CLK_TCK")


def machine_times() -> tuple[float, float]:
    """Seconds of busy CPU time (user, nice, system, irq, softirq) of the whole machine, and of steal."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / TICKS, steal / TICKS


def process_seconds(pid: int) -> float:
    """CPU seconds a process has used, its threads and its waited-for children included (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / TICKS  # utime, stime, cutime, cstime


def own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ancestors() -> list[int]:
    """The shell that runs this job and Snakemake above it (up to, not including, init)."""
    with contextlib.suppress(psutil.Error):
        return [p.pid for p in psutil.Process().parents() if p.pid > 1]
    return []


class Window:
    """One measured window: what the machine, the measured processes, this job and its ancestors used in it."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.busy, self.steal = machine_times()
        self.own = own_seconds()
        self.parents = {pid: process_seconds(pid) for pid in ancestors()}
        self.measured_s: float | None = None

    def measured(self, seconds: float) -> None:
        """The CPU seconds the measured processes used over the window (the caller knows them best: a finished
        llama-bench's rusage, a running server's /proc counters)."""
        self.measured_s = seconds

    def result(self, gpu_others: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """What the window saw; ``gpu_others``: processes of other users of the sampled GPUs (None: no GPU
        sampled)."""
        wall = time.monotonic() - self.start
        busy, steal = machine_times()
        cpus = os.cpu_count() or 1
        own = own_seconds() - self.own
        parents = sum(process_seconds(pid) - before for pid, before in self.parents.items())
        measured = self.measured_s or 0.0
        others = max(0.0, busy - self.busy - measured - own - parents)
        capacity = wall * cpus or 1.0
        return {
            "window_s": round(wall, 3), "cpus": cpus, "busy_s": round(busy - self.busy, 3),
            "measured_s": round(measured, 3), "own_s": round(own, 3), "snakemake_s": round(parents, 3),
            "others_s": round(others, 3), "steal_s": round(steal - self.steal, 3),
            "others_share": round(others / capacity, 4), "steal_share": round((steal - self.steal) / capacity, 4),
            "gpu_others": gpu_others,
        }


def tree_seconds(pid: int) -> Callable[[], float]:
    """A reader of the CPU seconds of a running process and its descendants (a server and its workers)."""
    def read() -> float:
        total = process_seconds(pid)
        with contextlib.suppress(psutil.Error):
            total += sum(process_seconds(child.pid) for child in psutil.Process(pid).children(recursive=True))
        return total
    return read

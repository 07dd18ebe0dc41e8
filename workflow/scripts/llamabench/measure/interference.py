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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

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


class Timeline:
    """Each ``--progress`` mark of a running program with both clocks and the program's own CPU seconds at it.

    llama-bench times its repetitions with the wall clock, so a stretch in which
    the VM paused the process, or the clock stepped, inflates one repetition
    while the machine-wide shares above see nothing. A mark holds what tells
    them apart afterwards (derive/samples.stalls): the monotonic and the wall
    clock, and the CPU seconds the program used by then.
    """

    def __init__(self, computes: bool = True) -> None:
        """``computes``: whether the program does its own computing. An RPC client waits on its link and its
        workers for most of a repetition (0 % of a core in a recorded 100 Mbit/s prompt run), so its CPU share
        says nothing of a stall: its marks keep the clocks alone, and the clock and repetition rules judge it."""
        self.pid: int | None = None
        self.computes = computes
        self.start_mono, self.start_wall = time.monotonic(), time.time()
        self.marks: list[list[Any]] = []

    def mark(self, line: str, cpu_s: float | None = None) -> None:
        """One mark; ``cpu_s``: the program's CPU seconds where the caller knows them (its rusage at exit), else
        read now (None once the program is gone: a mark read late has no CPU reading)."""
        if not self.computes:
            cpu_s = None
        elif cpu_s is None and self.pid and Path(f"/proc/{self.pid}/stat").exists():
            cpu_s = process_seconds(self.pid)
        self.marks.append([line, round(time.monotonic() - self.start_mono, 4),
                           round(time.time() - self.start_wall, 4), None if cpu_s is None else round(cpu_s, 3)])


def tree_seconds(pid: int) -> Callable[[], float]:
    """A reader of the CPU seconds of a running process and its descendants (a server and its workers)."""
    def read() -> float:
        total = process_seconds(pid)
        with contextlib.suppress(psutil.Error):
            total += sum(process_seconds(child.pid) for child in psutil.Process(pid).children(recursive=True))
        return total
    return read


# How often a server's CPU seconds are read while its requests run: a tenth of derive/samples.STALL_MIN_LOST_S,
# so a stretch of that length spans several readings. A reading is one /proc read (about 20 µs): the client
# thread costs well under 0.1 % of a core.
SERVER_READ_S = 0.05


class ServerReadings:
    """A served process's CPU seconds and both clocks every SERVER_READ_S, read by a thread while requests run.

    A server the VM pauses, a signal stops or the scheduler starves computes
    nothing while requests wait on it, so their TTFT and latency grow while the
    machine-wide shares (Window) see no other process. Each reading is
    [s since ``origin``, wall s since then, CPU s of the process tree]: the
    first on the requests' own clock (time.perf_counter, CLOCK_MONOTONIC on
    Linux), so a reading lines up with each request's ``sent_s`` and
    ``done_s`` when ``origin`` is the level's start. derive/samples.py
    serving_stalls reads them. The process tree is taken once at the start: a
    scan of every process at each reading would cost more than the reading.
    """

    def __init__(self, pid: int, period_s: float = SERVER_READ_S) -> None:
        self.pids = [pid]
        with contextlib.suppress(psutil.Error):
            self.pids += [child.pid for child in psutil.Process(pid).children(recursive=True)]
        self.period_s = period_s
        self.origin = self.wall_origin = 0.0
        self.readings: list[list[float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="server-readings", daemon=True)

    def __enter__(self) -> Self:
        self.origin, self.wall_origin = time.perf_counter(), time.time()
        self.read()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.read()

    def read(self) -> None:
        cpu = sum(process_seconds(pid) for pid in self.pids)
        self.readings.append([round(time.perf_counter() - self.origin, 3), round(time.time() - self.wall_origin, 3),
                              round(cpu, 2)])

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.read()

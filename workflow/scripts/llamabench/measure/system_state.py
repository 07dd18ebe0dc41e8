"""What disturbs a measurement, read just before it: load, busy processes, CPU frequency, memory, GPU.

Recorded in every measuring record, so a slow number can be explained later,
and so the report can warn when a cell ran on a busy machine.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import psutil

from llamabench.measure import gpus

BUSY_CPU_PERCENT = 20.0  # a process using more than this of one core during the sample is "busy"
SAMPLE_S = 0.5


def snapshot() -> dict[str, Any]:
    """Load average, processes busy during a short sample (not this one or its parents), CPU governor and
    frequencies where readable, available memory, and NVIDIA GPU clocks and temperature where present."""
    load1, load5, load15 = os.getloadavg()
    return {
        "loadavg": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "logical_cpus": os.cpu_count(),
        "busy_processes": busy_processes(),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cpu_mhz": _cpu_mhz(),
        "available_memory_mib": round(psutil.virtual_memory().available / 2**20),
        "gpus": _gpus(),
    }


def busy_processes() -> list[dict[str, Any]]:
    mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    procs = [p for p in psutil.process_iter(["pid", "name"]) if p.pid not in mine]
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.cpu_percent(None)  # the first call starts the sample
    psutil.cpu_percent(SAMPLE_S)
    busy = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            percent = proc.cpu_percent(None)
            if percent > BUSY_CPU_PERCENT:
                busy.append({"pid": proc.pid, "name": proc.info["name"], "cpu_percent": round(percent, 1)})
    return sorted(busy, key=lambda p: -p["cpu_percent"])


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _cpu_mhz() -> list[float]:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []
    return [float(line.split(":")[1]) for line in lines if line.startswith("cpu MHz")]


def _gpus() -> list[dict[str, str]] | None:
    return gpus.query(["name", "clocks.sm", "clocks.mem", "temperature.gpu", "utilization.gpu",
                                "memory.used"])[0]

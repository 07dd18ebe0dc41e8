"""What the hardware does while a measurement runs, read by a thread at a fixed interval: the host's CPU use
and clock, and each NVIDIA GPU's memory used, utilisation, SM clock, temperature and power (NVML, through
nvidia-ml-py); plus each GPU's energy counter at every llama-bench ``--progress`` marker.

Energy comes from NVML's total-energy counter read at the markers, not from
sampled power: recent drivers average ``power.draw`` over about a second, longer
than a small model's whole generation test. Where a GPU has no counter (before
Volta) the sampled power is integrated instead, and the result says so.

The thread is always stopped: ``sampling`` is a context manager that stops it on
every path (an exception, Ctrl-C), and it is a daemon besides.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pynvml

from llamabench.core import phases

# Bump when what a sample holds or how energy is derived changes.
SAMPLER_VERSION = 1

HOST_SERIES = ("cpu_percent", "cpu_mhz")
GPU_SERIES = ("memory_used_mib", "utilization_pct", "sm_clock_mhz", "temperature_c", "power_w")

COUNTER = "NVML total-energy counter, read at each llama-bench --progress marker"
SAMPLED_POWER = ("sampled NVML power (no energy counter on this GPU; the driver averages power over about a "
                 "second, so short phases are smeared)")


class Sampler:
    """The samples and marks of one measurement; the thread and NVML's handles live here between start and stop."""

    def __init__(self, interval_s: float, gpus: bool) -> None:
        self.interval_s = interval_s
        self.start_epoch = time.time()
        self.host: dict[str, list[float | None]] = {"t": [], **{name: [] for name in HOST_SERIES}}
        self.gpus: list[dict[str, Any]] = []
        self.marks: list[tuple[str, float, list[float | None]]] = []
        self.gpu_error: str | None = None
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._gpu_processes: dict[tuple[int, int], int] = {}  # (GPU index, pid) -> most MiB seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        if gpus:
            self._open_nvml()
        else:
            self.gpu_error = "not sampled: this measurement does not use a GPU"

    def start(self) -> None:
        psutil.cpu_percent(None)  # the first call starts psutil's interval
        self.mark(phases.BEFORE)
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sample()
        self.mark(phases.END)
        if self._nvml:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None

    def gpu_others(self, mine: set[int]) -> list[dict[str, Any]] | None:
        """Processes other than ``mine`` seen computing on the sampled GPUs during the measurement (NVML), with
        the most memory each used; None where no GPU is sampled."""
        if not self.gpus:
            return None
        return [{"gpu": gpu, "pid": pid, "used_mib": used} for (gpu, pid), used in sorted(self._gpu_processes.items())
                if pid not in mine]

    def running(self) -> bool:
        return self._thread.is_alive()

    def mark(self, label: str) -> None:
        """A phase boundary: the time and every GPU's energy counter (mJ), None where a GPU has none."""
        self.marks.append((label, time.time(), [self._call(self._nvml.nvmlDeviceGetTotalEnergyConsumption, h)
                                                for h in self._handles] if self._nvml else []))

    def sample(self) -> None:
        now = round(time.time() - self.start_epoch, 3)
        freq = psutil.cpu_freq()
        for name, value in (("t", now), ("cpu_percent", psutil.cpu_percent(None)),
                            ("cpu_mhz", round(freq.current) if freq else None)):
            self.host[name].append(value)
        if not self._nvml:
            return
        nvml = self._nvml
        for gpu, handle in zip(self.gpus, self._handles):
            for proc in self._call(nvml.nvmlDeviceGetComputeRunningProcesses, handle) or []:
                key = (gpu["index"], proc.pid)
                self._gpu_processes[key] = max(self._gpu_processes.get(key, 0), (proc.usedGpuMemory or 0) >> 20)
            memory = self._call(nvml.nvmlDeviceGetMemoryInfo, handle)
            utilization = self._call(nvml.nvmlDeviceGetUtilizationRates, handle)
            power = self._call(nvml.nvmlDeviceGetPowerUsage, handle)
            values = {
                "t": now,
                "memory_used_mib": round(memory.used / 2**20, 1) if memory else None,
                "utilization_pct": utilization.gpu if utilization else None,
                "sm_clock_mhz": self._call(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM),
                "temperature_c": self._call(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU),
                "power_w": power / 1000 if power is not None else None,
            }
            for name, value in values.items():
                gpu["series"][name].append(value)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        """One NVML query, None where this GPU does not support it."""
        try:
            return function(*args)
        except self._nvml.NVMLError:
            return None

    def _open_nvml(self) -> None:
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as err:
            self.gpu_error = f"NVML is not available ({err}): no NVIDIA driver on this host"
            return
        self._nvml = pynvml
        try:
            self._enumerate()
        except pynvml.NVMLError as err:
            self.gpu_error = f"NVML could not list the GPUs ({err})"
            self.gpus, self._handles = [], []
            with contextlib.suppress(pynvml.NVMLError):
                pynvml.nvmlShutdown()
            self._nvml = None
            return
        if not self.gpus:
            self.gpu_error = "NVML lists no GPU visible to this job (CUDA_VISIBLE_DEVICES)"

    def _enumerate(self) -> None:
        """Every GPU CUDA sees, with what explains its numbers (name, memory, driver and its CUDA version)."""
        nvml = self._nvml
        driver = self._call(nvml.nvmlSystemGetDriverVersion)
        cuda = self._call(nvml.nvmlSystemGetCudaDriverVersion)
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = self._call(nvml.nvmlDeviceGetUUID, handle)
            if not visible(index, uuid):
                continue
            memory = self._call(nvml.nvmlDeviceGetMemoryInfo, handle)
            self._handles.append(handle)
            self.gpus.append({
                "index": index, "name": self._call(nvml.nvmlDeviceGetName, handle), "uuid": uuid,
                "memory_total_mib": round(memory.total / 2**20) if memory else None, "driver": driver,
                "cuda_driver": f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None,
                "energy_counter": self._call(nvml.nvmlDeviceGetTotalEnergyConsumption, handle) is not None,
                "series": {"t": [], **{name: [] for name in GPU_SERIES}},
            })

    def result(self) -> dict[str, Any]:
        """The record part: every series, every mark, and what follows from them (energy per phase, peak VRAM)."""
        return {
            "version": SAMPLER_VERSION,
            "interval_ms": round(self.interval_s * 1000),
            "start_epoch": self.start_epoch,
            "host": self.host,
            "gpus": self.gpus,
            "gpu_error": self.gpu_error,
            "marks": [{"label": label, "t": round(t - self.start_epoch, 3), "energy_mj": energy}
                      for label, t, energy in self.marks],
            "energy": energy_by_phase(self.marks, self.gpus, self.start_epoch) if self.gpus else None,
            "vram": vram(self.gpus) if self.gpus else None,
        }


def visible(index: int, uuid: str | None) -> bool:
    """Whether CUDA (CUDA_VISIBLE_DEVICES, by index or UUID) sees this GPU: NVML lists every GPU of the node."""
    chosen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is None:
        return True
    names = [name.strip() for name in chosen.split(",") if name.strip()]
    return str(index) in names or any(uuid and uuid.startswith(name) for name in names if name.startswith("GPU-"))


@contextlib.contextmanager
def sampling(interval_s: float, gpus: bool) -> Iterator[Sampler]:
    """A running Sampler for the ``with`` block; stopped on every way out of it."""
    sampler = Sampler(interval_s, gpus)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()


def energy_by_phase(marks: list[tuple[str, float, list[float | None]]], gpus: list[dict[str, Any]],
                    start_epoch: float) -> dict[str, Any]:
    """Joules and seconds per llama-bench phase, all GPUs together (idle ones included: it is what the node drew).

    Each GPU's energy is the counter's difference across the phase where the GPU has
    a counter, else its sampled power integrated over the phase.
    """
    joules: dict[str, float] = {}
    for phase, start, first, end, last in phases.stretches(marks):
        for index, gpu in enumerate(gpus):
            if first[index] is not None and last[index] is not None:
                used = (last[index] - first[index]) / 1000
            else:
                series = gpu["series"]
                used = integrate(series["t"], series["power_w"], start - start_epoch, end - start_epoch)
            joules[phase] = joules.get(phase, 0.0) + used
    counters = all(gpu["energy_counter"] for gpu in gpus)
    return {"source": COUNTER if counters else SAMPLED_POWER,
            "phases": {phase: {"joules": round(joules.get(phase, 0.0), 4), "seconds": round(seconds, 4)}
                       for phase, seconds in phases.phase_seconds(marks).items()}}


def integrate(times: list[float], watts: list[float | None], start: float, end: float) -> float:
    """Joules over [start, end] from power samples, each held until the next (the first also before it)."""
    points = [(t, w) for t, w in zip(times, watts) if w is not None]
    if not points or end <= start:
        return 0.0
    joules = 0.0
    for i, (t, w) in enumerate(points):
        since = start if i == 0 else max(start, t)
        until = min(end, points[i + 1][0]) if i + 1 < len(points) else end
        if until > since:
            joules += w * (until - since)
    return joules


def vram(gpus: list[dict[str, Any]]) -> dict[str, Any]:
    """Per GPU the memory used before the run and at its peak; the run's own peak is the sum of the increases."""
    per_gpu = []
    for gpu in gpus:
        used = [m for m in gpu["series"]["memory_used_mib"] if m is not None]
        if used:
            per_gpu.append({"index": gpu["index"], "before_mib": used[0], "peak_mib": max(used)})
    return {"gpus": per_gpu,
            "peak_increase_mib": round(sum(g["peak_mib"] - g["before_mib"] for g in per_gpu), 1) if per_gpu else None}

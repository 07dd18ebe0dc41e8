"""What a measurement's recorded samples mean: energy per token, peak GPU memory, a busy machine.

The sampler (measure/sampler.py) and the system state (measure/system_state.py)
record raw series and snapshots; the summaries read them through here.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

from llamabench.core import metrics, phases


def peak_vram(samples: Mapping[str, Any] | None) -> float | None:
    """A sampled run's own peak GPU memory (``vram.peak_increase_mib``); None where no GPU was sampled."""
    return ((samples or {}).get("vram") or {}).get("peak_increase_mib")


def per_token(energy: Mapping[str, Any] | None, phase: str | None, tokens: int) -> dict[str, float | None]:
    """Joules per token and mean power over one phase (``prompt`` or ``generation``), ``tokens`` in all."""
    totals = (energy or {}).get("phases", {}).get(phase)
    if not totals or not tokens:
        return {"j_per_token": None, "power_w": None}
    return {"j_per_token": totals["joules"] / tokens,
            "power_w": totals["joules"] / totals["seconds"] if totals["seconds"] else None}


def energy_columns(samples: Mapping[str, Any] | None, rec: Mapping[str, Any]) -> dict[str, Any]:
    """GPU energy per token and mean power of one llama-bench test, from its timed phase (prompt runs for a
    pp test, generation runs for a tg test) over all repetitions; none for a combined pp+tg test."""
    energy = (samples or {}).get("energy")
    n_prompt, n_gen, reps = int(rec.get("n_prompt", 0)), int(rec.get("n_gen", 0)), len(rec.get("samples_ns") or [])
    phase, tokens = ("prompt", n_prompt) if not n_gen else ("generation", n_gen) if not n_prompt else (None, 0)
    found = per_token(energy, phase, tokens * reps)
    return {"energy_j_per_token": found["j_per_token"], "gpu_power_w": found["power_w"],
            "energy_source": energy["source"] if energy and found["j_per_token"] is not None else None}


def busy(state: Mapping[str, Any] | None) -> str | None:
    """Why a cell's machine was not quiet when it started, in a few words, or None."""
    if not state:
        return None
    reasons = [f"{p['name']} ({p['cpu_percent']:.0f} % CPU)" for p in state["busy_processes"]]
    if state["logical_cpus"] and state["loadavg"][0] > state["logical_cpus"]:
        reasons.append(f"load average {state['loadavg'][0]}")
    return ", ".join(reasons) or None


def disturbance_limit(max_share: float, action: str) -> float | None:
    """The share of the CPU above which a round counts as disturbed and is left out of a decision or an aggregate
    (``benchmark.disturbance``); None where the run keeps such rounds, flagged (action ``flag``)."""
    return max_share if action != "flag" else None


def disturbed(run: Mapping[str, Any] | None, max_share: float) -> str | None:
    """Why a measured run was disturbed, or None: other processes' CPU time, or the VM's steal, above
    ``max_share`` of all cores over its window; or one of its timed repetitions stalled (:func:`stalls`); or
    its server stalled with requests in flight (:func:`serving_stalls`). ``run``: a llama-bench run (its
    ``interference`` window and ``records``) or a server's (its window and ``requests``); None too for a record
    made before the window was measured."""
    interference = (run or {}).get("interference")
    if not interference:
        return None
    reasons = [f"{what} took {interference[key]:.0%} of the CPU" for key, what in
               (("others_share", "other processes"), ("steal_share", "the hypervisor (steal)"))
               if interference.get(key, 0) > max_share]
    reasons += stalls(interference.get("marks") or [], (run or {}).get("records") or [])
    reasons += serving_stalls(interference.get("server_cpu") or [], (run or {}).get("requests") or [])
    return "; ".join(reasons) or None


# A timed repetition whose program ran less than this share of the CPU time its phase's other repetitions ran
# (per second of monotonic time) was paused: by the VM, a signal or the scheduler. A stretch shorter than
# STALL_MIN_LOST_S of lost time is within the CPU clock's 10 ms ticks and the relay's delay.
STALL_SHARE, STALL_MIN_LOST_S = 0.6, 0.25
# The wall clock (which llama-bench times with) and the monotonic clock disagreeing by more than this over one
# stretch: the clock stepped, and the repetition's time with it.
CLOCK_STEP_S = 0.1
# A repetition that took more than this many times its test's median repetition: far from the cell's others.
# On 35 recorded quiet llama-bench tests (tests/data/quiet-repetitions-0c1e570.json) the largest was 1.24.
REPETITION_FACTOR = 1.5


def stalls(marks: list[list[Any]], records: list[Mapping[str, Any]]) -> list[str]:
    """Why a llama-bench run's timed repetitions cannot be trusted: one ran far less of the CPU than the
    others of its phase (a pause the machine-wide shares miss: a stopped process uses no CPU and lets no
    other process use it either), the wall clock stepped during one, or one took far longer than its test's
    median. ``marks``: [line, monotonic s, wall s, CPU s] at each ``--progress`` mark (measure/interference.py
    Timeline); ``records``: llama-bench's, with ``samples_ns``."""
    return [*_paused(marks), *_outliers(records)]


def _timed(marks: list[list[Any]]) -> list[tuple[str, str, float, float, float | None]]:
    """(mark, phase, monotonic s, wall s, CPU s or None) of each timed repetition's stretch (warm-ups and
    loading aside), up to the next mark."""
    found = []
    read = [(line, mono, (line, wall, cpu)) for line, mono, wall, cpu in marks]
    for phase, mono, (line, wall, cpu), mono2, (_, wall2, cpu2) in phases.stretches(read):
        if phase in ("prompt", "generation", "depth") and mono2 > mono:
            used = cpu2 - cpu if cpu is not None and cpu2 is not None and cpu2 >= cpu else None
            found.append((line.removeprefix(phases.MARKER), phase, mono2 - mono, wall2 - wall, used))
    return found


def _paused(marks: list[list[Any]]) -> list[str]:
    stretches = _timed(marks)
    reasons = [f"the wall clock stepped {wall - mono:+.2f} s during {what}"
               for what, _, mono, wall, _ in stretches if abs(wall - mono) > CLOCK_STEP_S]
    for phase in {p for _, p, *_ in stretches}:
        shares = [(what, mono, used / mono) for what, p, mono, _, used in stretches if p == phase and used is not None]
        if len(shares) < 2:
            continue
        typical = float(np.median([share for *_, share in shares]))
        reasons += [f"{what} ran {share / typical:.0%} of the CPU its phase's others did ({mono:.1f} s)"
                    for what, mono, share in shares
                    if share < STALL_SHARE * typical and mono * (1 - share / typical) >= STALL_MIN_LOST_S]
    return sorted(reasons)


def _outliers(records: list[Mapping[str, Any]]) -> list[str]:
    reasons = []
    for rec in records:
        times = [float(t) for t in rec.get("samples_ns") or []]
        if len(times) < 2:
            continue
        median = float(np.median(times))
        reasons += [f"repetition {i + 1} of {metrics.test_of(rec)} took {t / median:.1f}× its median"
                    for i, t in enumerate(times) if median and t > REPETITION_FACTOR * median]
    return reasons



# A server that used less than this share of one core over a stretch of at least STALL_MIN_LOST_S while requests
# were in flight was stopped or paused: it computes whenever a request waits on it (prompt or generation), and
# the CPU clock's 10 ms ticks count a busy thread at 5 ticks per 50 ms reading. A share of 0.1 is half a tick per
# reading: only a server that ran not at all, or a few ticks in the whole stretch, falls under it. Measured
# (benchmarks/stall_detection.py --program llama-server, 2-core VM, serving defaults cell): a quiet server's least
# share over any 50 ms with requests in flight was 0.59 of a core, with other processes taking 30 % of the machine; a
# server stopped 2 s used 0 % for 1.97 s, in 9 runs of 9. A CUDA server keeps its core too: ggml-cuda leaves
# CUDA's default schedule, which spins in stream synchronisation while the contexts are fewer than the cores.
SERVER_IDLE_SHARE = 0.1
# Two readings of the server (50 ms apart: measure/interference.py SERVER_READ_S) further apart than this with
# requests in flight: the client that reads them was paused too (the VM stopped), or starved, and its clock
# ran on while its requests' times grew. The reading period plus STALL_MIN_LOST_S: on 23 measured serving cells,
# quiet, stopped and sharing the machine with other processes at up to 57 %, the largest gap was 61 ms.
READ_GAP_S = 0.3


def serving_stalls(readings: list[list[float]], requests: list[Mapping[str, Any]]) -> list[str]:
    """Why a serving run's requests cannot be trusted: a stretch with requests in flight in which the server
    used almost no CPU (a stopped or paused server computes nothing while work waits on it; the machine-wide
    shares see nothing either), a gap between readings (the reader itself was paused), or a step of the wall
    clock against the monotonic one over CLOCK_STEP_S (the requests are timed on the monotonic clock, but a VM
    pause that stopped it shows only so: its wall clock is set right afterwards; between quiet readings the two
    differ by at most 1 ms, their rounding). ``readings``: [s, wall s,
    server CPU s] from the level's start (measure/interference.py ServerReadings); ``requests``: the level's,
    with ``sent_s`` and ``done_s`` on the same clock."""
    flight = _in_flight(requests)
    pairs = [(a, b) for a, b in itertools.pairwise(readings) if b[0] > a[0]]
    steps = [f"the wall clock stepped {(b[1] - a[1]) - (b[0] - a[0]):+.2f} s at {a[0]:.2f} s into the level"
             for a, b in pairs if abs((b[1] - a[1]) - (b[0] - a[0])) > CLOCK_STEP_S]
    gaps = [f"no reading of the server for {b[0] - a[0]:.2f} s with requests in flight (from {a[0]:.2f} s into "
            "the level): the client was paused too"
            for a, b in pairs if b[0] - a[0] > READ_GAP_S and _overlaps(flight, a[0], b[0])]
    return [*steps, *gaps, *_idle_server(pairs, flight)]


def _in_flight(requests: list[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """The stretches (s from the level's start, sorted, disjoint) in which at least one request was in flight."""
    merged: list[tuple[float, float]] = []
    for sent, done in sorted((r["sent_s"], r["done_s"]) for r in requests if "sent_s" in r and "done_s" in r):
        if merged and sent <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], done))
        else:
            merged.append((sent, done))
    return merged


def _covered(flight: list[tuple[float, float]], start: float, end: float) -> bool:
    i = bisect.bisect_right(flight, start, key=lambda span: span[0]) - 1
    return i >= 0 and flight[i][1] >= end


def _overlaps(flight: list[tuple[float, float]], start: float, end: float) -> bool:
    i = bisect.bisect_left(flight, end, key=lambda span: span[0]) - 1
    return i >= 0 and flight[i][1] > start


def _idle_server(pairs: list[tuple[list[float], list[float]]], flight: list[tuple[float, float]]) -> list[str]:
    """Each run of consecutive readings, requests in flight throughout, in which the server used under
    SERVER_IDLE_SHARE of a core, if it lasted STALL_MIN_LOST_S or more."""
    reasons: list[str] = []
    run: list[tuple[list[float], list[float]]] = []
    for a, b in pairs:
        if _covered(flight, a[0], b[0]) and b[2] - a[2] < SERVER_IDLE_SHARE * (b[0] - a[0]):
            run.append((a, b))
        else:
            reasons += _idle_stretch(run)
            run = []
    return reasons + _idle_stretch(run)


def _idle_stretch(run: list[tuple[list[float], list[float]]]) -> list[str]:
    if not run or (length := run[-1][1][0] - run[0][0][0]) < STALL_MIN_LOST_S:
        return []
    share = (run[-1][1][2] - run[0][0][2]) / length
    return [f"the server used {share:.0%} of a core for {length:.2f} s with requests in flight (from "
            f"{run[0][0][0]:.2f} s into the level)"]

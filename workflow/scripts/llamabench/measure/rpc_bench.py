"""llama-bench through RPC workers: one RPC cell's run on the client build, and what crossed each link.

A cell is a matrix cell run through a topology with one device selection
(``-dev RPC0/RPC1``, ``RPC0``, ... or ``none``: the local CPU only, the
single-node partner every RPC cell is compared with). ``--rpc`` is a global
llama-bench option and comes before ``-dev``. Workers are started for the
cell and stopped when it ends, whatever the outcome.

For netns workers the bytes each link carried are read from the host end's
counters at every boundary that llama-bench's ``--progress`` prints (model load,
warm-ups, each prompt and each generation repetition), so one process is
attributed phase by phase; the phases add up to the total by construction, and
what falls outside them (context teardown) is kept as ``other``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llamabench.core import phases
from llamabench.core.errors import Unsupported
from llamabench.core.status import Status
from llamabench.measure import interference, llama_bench, machine_lock, processes, rpc_workers
from llamabench.measure.rpc_workers import WorkerFailed

log = logging.getLogger(__name__)

def command(bench_exe: Path, model: Path, params: Mapping[str, Any], addresses: list[str], devices: str) -> list[str]:
    """``--rpc`` first (a global option), then ``-dev``, then the cell's parameters, with progress markers.

    A llama-bench without ``-dev`` (mid-2025) uses every worker it is given: "none" is
    then the same command without ``--rpc``, and a selection of some workers cannot be said.
    """
    rpc = ["--rpc", ",".join(addresses), "-dev", devices]
    if "-dev," not in processes.help_text(bench_exe):
        if devices != "none" and devices.count("RPC") != len(addresses):
            raise WorkerFailed(f"this llama-bench has no -dev: it runs on all workers or none, not {devices}")
        rpc = [] if devices == "none" else ["--rpc", ",".join(addresses)]
    return [str(bench_exe), *rpc, "-m", str(model), *llama_bench.LOGGING,
            *llama_bench.arguments(params, processes.help_text(bench_exe))]


def measure(bench_exe: Path, model: Path, params: Mapping[str, Any], workers: list[dict[str, Any]],
            rpc: Mapping[str, Any], log_path: Path, timeout: float, completion_exe: Path | None = None,
            skip: str | None = None, gpus: bool = False, interval_s: float = 0.1) -> dict[str, Any]:
    """Start the workers, check the handshake, run llama-bench, attribute the bytes; never raises for a failure.

    ``skip``: why this cell is not run at all (a CUDA client on a host without a GPU); ``gpus``: whether
    the client or a worker runs on this node's GPUs, which the sampler then reads.
    """
    result: dict[str, Any] = {"status": Status.FAILED, "error": None, "workers": [], "rpc_devices": {},
                              "llama_bench": None, "traffic": None}
    if why := skip or rpc_workers.unavailable(workers):
        log.warning("skipped: %s", why)
        return {**result, "status": Status.SKIPPED, "error": why}
    try:
        with machine_lock.held("RPC cell"), rpc_workers.running(workers, rpc["link_rate"], log_path) as running:
            result["workers"] = [rpc_workers.facts(w) for w in running]
            addresses = [w["address"] for w in running]
            tools = [bench_exe] + ([completion_exe] if completion_exe else [])
            result["rpc_devices"] = rpc_workers.rpc_devices(tools, addresses)
            marks: list[tuple[str, float, list[dict[str, int] | None]]] = [(phases.BEFORE, time.time(),
                                                                            rpc_workers.counters(running))]
            # The workers here are part of the measurement: their CPU time is not a disturbance.
            local = [w["proc"].pid for w in running if w["proc"] is not None]
            readers = [interference.tree_seconds(pid) for pid in local]
            run = llama_bench.measure(
                command(bench_exe, model, params, addresses, rpc["devices"]), log_path, timeout=timeout,
                on_progress=lambda line: marks.append((line, time.time(), rpc_workers.counters(running))),
                gpus=gpus, interval_s=interval_s,
                helpers=(lambda: sum(read() for read in readers), set(local)))
            marks.append((phases.END, time.time(), rpc_workers.counters(running)))
            dead = [w["index"] for w in running if not rpc_workers.alive(w)]
            result["llama_bench"] = run
            result["traffic"] = traffic(marks, params, running)
            result["status"] = run["status"]
            result["error"] = run.get("error")
            if dead:
                result["status"] = Status.FAILED
                result["error"] = (f"worker {', '.join(map(str, dead))} died during the cell "
                                   f"(worker log: {log_path}); llama-bench: {run.get('error') or 'ok'}")
    except WorkerFailed as err:
        result["error"] = str(err)
    except Unsupported as err:
        log.warning("skipped: %s", err)
        result.update(status=Status.SKIPPED, error=str(err))
    return result


def traffic(marks: list[tuple[str, float, list[dict[str, int] | None]]], params: Mapping[str, Any],
            workers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Bytes per phase and per worker link (sent = client to worker), and per token."""
    if not any(w.get("iface") for w in workers):
        return None
    per_worker = []
    for index, worker in enumerate(workers):
        if not worker.get("iface"):
            continue
        by_phase: dict[str, dict[str, int]] = {}
        for phase, _, before, _, after in phases.stretches(marks):
            if before[index] is None or after[index] is None:
                continue
            into = by_phase.setdefault(phase, {"sent_bytes": 0, "received_bytes": 0})
            into["sent_bytes"] += after[index]["tx_bytes"] - before[index]["tx_bytes"]
            into["received_bytes"] += after[index]["rx_bytes"] - before[index]["rx_bytes"]
        first, last = marks[0][2][index], next((m[2][index] for m in reversed(marks) if m[2][index]), None)
        total = {"sent_bytes": last["tx_bytes"] - first["tx_bytes"],
                 "received_bytes": last["rx_bytes"] - first["rx_bytes"]} if first and last else None
        per_worker.append({"index": worker["index"], "interface": worker["iface"], "phases": by_phase, "total": total})
    reps = params["repetitions"]

    def per_token(phase: str, tokens: int) -> float | None:
        if not tokens:
            return None
        moved = sum(w["phases"].get(phase, {}).get(k, 0) for w in per_worker for k in ("sent_bytes", "received_bytes"))
        return moved / (reps * tokens)

    return {
        "attribution": "host-side veth counters read at each llama-bench --progress boundary",
        "workers": per_worker,
        "load_bytes": sum(sum(w["phases"].get("load", {}).values()) for w in per_worker),
        "bytes_per_prompt_token": per_token("prompt", params["n_prompt"]),
        "bytes_per_generated_token": per_token("generation", params["n_gen"]),
        "max_link_bytes_per_generated_token": max(
            (max(w["phases"].get("generation", {}).values(), default=0) / (reps * params["n_gen"])
             for w in per_worker), default=None) if params["n_gen"] else None,
    }

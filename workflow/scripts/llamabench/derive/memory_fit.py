"""Whether a cell fits before it starts: its memory predicted per device against what each device has.

A cell predicted to need more than a device's limit (``memory.limit_mib`` for the
host, else what is available when the cell starts; a GPU's free memory) is not
started and is recorded as ``predicted_out_of_memory``, with the numbers;
``memory.run_anyway`` starts it regardless (it may then fail as ``out_of_memory``,
which llama-bench's log tells). The job records the prediction it acted on; the
memory table (``memory_table``) predicts again from the records, so an improved
predictor changes the table, not the measurements.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from llamabench.core import axes, options
from llamabench.derive import memory

log = logging.getLogger(__name__)


def _settings(params: Mapping[str, Any], offloaded: int, devices: list[list[Any]],
              cpu_flags: Iterable[str], tensor_limits: Mapping[str, int] | None) -> dict[str, Any]:
    """What every run of a cell shares: batch and ubatch, flash attention, the load mode, the layers offloaded and
    the GPUs they go to (``devices``: [[name, share], ...], core/backends.py ``split_devices``; empty: none), and
    the largest tensor each of those takes where it has such a limit (measure/gpus.py ``tensor_limits``)."""
    found = {"n_batch": params["batch_size"], "n_ubatch": params["ubatch_size"],
             "flash_attn": not options.flash_attn_off(params["flash_attn"]),
             "mmap": "none" not in str(axes.value(params, "load_mode")),
             "gpu_layers": offloaded, "gpu": devices[0][0] if devices else None, "cpu_flags": sorted(cpu_flags)}
    limits = tensor_limits or {}
    if caps := {name: limits[name] for name, _ in devices if name in limits}:
        found["max_tensor_bytes"] = caps
    return {**found, "devices": devices} if len(devices) > 1 else found


def bench_runs(params: Mapping[str, Any], offloaded: int, devices: list[list[Any]],
               cpu_flags: Iterable[str], tensor_limits: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """One run per llama-bench test of the cell (the prompt test, then the generation test), each with the
    context llama-bench makes for it: prompt or generation tokens plus the depth."""
    depth = int(params.get("n_depth") or 0)
    common = {**_settings(params, offloaded, devices, cpu_flags, tensor_limits), "type_k": params["cache_type_k"],
              "type_v": params["cache_type_v"]}
    return [{**common, "n_ctx": int(tokens) + depth, "touched_tokens": int(tokens)}
            for tokens in (params["n_prompt"], params["n_gen"]) if tokens]


def serve_runs(params: Mapping[str, Any], offloaded: int, devices: list[list[Any]],
               cpu_flags: Iterable[str], tensor_limits: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """llama-server's one context: ``ctx_size`` shared by ``parallel`` slots, each its own K/V stream (the
    cells pass ``-np``, so the cache is not unified), f16 K/V (the server's default); the measured prompt is
    the largest micro-batch."""
    return [{**_settings(params, offloaded, devices, cpu_flags, tensor_limits), "n_ctx": params["ctx_size"],
             "n_seq": params["parallel"],
             "kv_unified": False, "type_k": "f16", "type_v": "f16", "touched_tokens": int(params["prompt_tokens"])}]


def predictions(shape: Mapping[str, Any], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The prediction of each run; none where the predictor cannot say (the cell then starts, and llama.cpp
    decides)."""
    try:
        return [memory.predict(shape, run) for run in runs]
    except memory.Unpredictable as err:
        log.warning("no memory prediction: %s", err)
        return []


def gate(shape: Mapping[str, Any], runs: list[dict[str, Any]], settings: Mapping[str, Any], available_mib: float,
         gpu_free_mib: Mapping[str, float]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A cell's predictions and its fit decision, under the ``memory`` settings: the host's limit (or what is
    ``available_mib``), each GPU's free memory."""
    predicted = predictions(shape, runs)
    limit = settings["limit_mib"]
    limits = {"CPU": float(available_mib if limit is None else limit), **gpu_free_mib}
    return predicted, decide(predicted, limits, settings["run_anyway"])


def decide(predicted: list[dict[str, Any]], limit: Mapping[str, float], run_anyway: bool) -> dict[str, Any]:
    """The fit decision for a cell's runs: every device's largest predicted peak against its limit, and no K/V
    tensor over the largest its device takes (``oversized``)."""
    peaks: dict[str, float] = {}
    for prediction in predicted:
        for device, mib in prediction["resident"].items():
            peaks[device] = max(peaks.get(device, 0.0), mib)
    over = [{"device": device, "predicted_mib": mib, "limit_mib": limit[device]}
            for device, mib in sorted(peaks.items()) if device in limit and mib > limit[device]]
    oversized: dict[str, dict[str, Any]] = {}
    for prediction in predicted:  # each device's largest K/V tensor over any run
        for device, found in prediction.get("oversized", {}).items():
            if found["tensor_mib"] > oversized.get(device, {}).get("tensor_mib", 0.0):
                oversized[device] = found
    over += [{"device": device, **found} for device, found in sorted(oversized.items())]
    return {"predicted_peak_mib": peaks, "limit_mib": dict(limit), "fits": not over, "over": over,
            "started": not over or run_anyway}


def reason(decision: Mapping[str, Any]) -> str:
    return "; ".join(
        f"{o['device']} predicted {o['predicted_mib']:.0f} MiB, more than its {o['limit_mib']:.0f} MiB "
        "(memory.limit_mib; memory.run_anyway starts it regardless)" if "predicted_mib" in o else
        f"{o['device']} takes no tensor over {o['limit_mib']:.0f} MiB, and {o['tensors']} K/V tensors would be up to "
        f"{o['tensor_mib']:.0f} MiB: llama.cpp stops (memory.run_anyway starts it regardless)"
        for o in decision["over"])

"""llama.cpp's own memory projection: ``llama-fit-params --fit-print on`` (late-2025 trees on).

It loads the model's metadata and projects each device's model, context and
compute memory with the engine's allocator, without allocating and without mmap:
a second predictor beside derive/memory.py, a reference rather than ground truth.
A benchmark cell records it once (round 1) for its largest context.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llamabench.measure import processes

TIMEOUT_S = 120


def executable(build: Mapping[str, Any]) -> Path | None:
    """The build's llama-fit-params, None where its tree has none (before late 2025)."""
    name = build["binaries"].get("fit_params")
    return Path(build["bin_dir"]) / name if name else None


def project(exe: Path | None, model: Path, params: Mapping[str, Any], n_ctx: int,
            flash_attn: bool) -> dict[str, Any] | None:
    """The projection for one context: {"n_ctx", "devices": {device: {weights, kv, compute}}} in MiB, or the
    error; None without the tool."""
    if exe is None:
        return None
    cmd = [str(exe), "-m", str(model), "--fit-print", "on", "-c", str(n_ctx), "-b", str(params["batch_size"]),
           "-ub", str(params["ubatch_size"]), "-ctk", str(params["cache_type_k"]), "-ctv",
           str(params["cache_type_v"]), "-fa", "on" if flash_attn else "off", "-ngl", str(params["n_gpu_layers"])]
    try:
        out = processes.run(cmd, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"llama-fit-params did not finish in {TIMEOUT_S} s"}
    rows = parse(out.stdout)
    if out.returncode != 0 or not rows:
        return {"error": f"llama-fit-params exit status {out.returncode}: {(out.stderr or '').strip()[-300:]}"}
    return {"n_ctx": n_ctx, "devices": rows}


def parse(text: str) -> dict[str, dict[str, float]]:
    """``--fit-print on`` rows: ``<device> <model> <context> <compute>`` in MiB; the host's row, ``Host``, is the
    CPU's."""
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and all(p.isdigit() for p in parts[1:]):
            device = "CPU" if parts[0] == "Host" else parts[0]
            rows[device] = dict(zip(("weights", "kv", "compute"), map(float, parts[1:])))
    return rows

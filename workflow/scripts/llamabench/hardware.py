"""What the machine that runs the cells has: nvcc and its version, the NVIDIA GPUs (name, memory, driver,
compute capability), written to ``results/hardware/<platform>.json`` by the rule of that name.

Other rules read it: a CUDA build without ``CMAKE_CUDA_ARCHITECTURES`` compiles
for the detected compute capabilities only, and a CUDA build's cells on a host
without a GPU are recorded as skipped with the reason. A CUDA binary on such a
host silently runs on the CPU; those numbers must never be reported as GPU
numbers. On a cluster the rule runs on the platform's node, not on the host
that submits.
"""

from __future__ import annotations

import re
from typing import Any

from llamabench.core import records
from llamabench.measure import gpus
from llamabench.prepare import toolchain


GPU_FIELDS = ["index", "name", "memory.total", "driver_version", "compute_cap"]


def hardware(smk: Any) -> None:
    """Rule ``hardware``: the record of this node's CUDA toolkit and GPUs."""
    records.write(smk.output[0], "hardware", {"platform": smk.wildcards.platform, **detect()})


def detect() -> dict[str, Any]:
    nvcc = None
    if path := toolchain.nvcc_path():
        match = re.search(r"release (\d+\.\d+)", toolchain.tool_version(path, "release"))
        nvcc = {"path": path, "version": match.group(1) if match else None}
    found, why = gpus.query(GPU_FIELDS)
    return {"nvcc": nvcc, "gpus": found or [], "gpu_error": why}

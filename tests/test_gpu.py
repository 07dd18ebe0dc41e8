"""The CUDA path, where a GPU exists: build with CUDA, see the device, offload layers.

Skipped on machines without an NVIDIA GPU (CI never has one).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from conftest import DEFAULT_CONFIG
from llamabench import bench_cell, build

CUDA_OPTIONS = ["-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=90"]


@pytest.mark.gpu
def test_cuda_build_offloads_to_the_gpu(source_manifest: dict[str, Any], gemma: Path, tmp_path: Path) -> None:
    entry = build.cached_build(source_manifest, "cuda", CUDA_OPTIONS, threads=os.cpu_count() or 2)
    bin_dir = Path(entry["cache_dir"]) / "bin"
    devices = build.list_devices(bin_dir, entry["binaries"])
    assert any(d["name"].startswith("CUDA") for d in devices["devices"])
    params = {**DEFAULT_CONFIG["benchmark"]["defaults"], "n_gpu_layers": 99, "repetitions": 2}
    result = bench_cell.measure(bench_cell.command(bin_dir / "llama-bench", gemma, params, delay=0), tmp_path / "cell.log")
    assert result["status"] == "ok", result.get("error")
    assert all("CUDA" in r["backends"] and r["gpu_info"] for r in result["records"])

"""The CUDA path, where a GPU exists: build with CUDA, see the device, offload layers, sample the GPU and its
energy counter, and keep a true CPU baseline on the CPU.

Skipped on machines without an NVIDIA GPU (CI never has one).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from conftest import DEFAULT_CONFIG
from llamabench.prepare import builds
from llamabench.core import axes, matrix
from llamabench.derive import samples as sampled
from llamabench.measure import llama_bench

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake

CUDA_OPTIONS = ["-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=90"]


@pytest.fixture(scope="module")
def cuda_bin(source_manifest: dict[str, Any]) -> Path:
    entry = builds.cached_build(source_manifest, "cuda", CUDA_OPTIONS, threads=os.cpu_count() or 2)
    return Path(entry["cache_dir"]) / "bin"


@pytest.mark.gpu
def test_cuda_build_offloads_to_the_gpu_and_the_sampler_reads_its_energy(cuda_bin: Path, gemma: Path,
                                                                         tmp_path: Path) -> None:
    devices = builds.list_devices(cuda_bin, {"bench": "llama-bench"})
    assert any(d["name"].startswith("CUDA") for d in devices["devices"])
    params = axes.normalize({**DEFAULT_CONFIG["benchmark"]["defaults"], "n_gpu_layers": "all", "repetitions": 2},
                            axes.BENCHMARK)
    cmd = llama_bench.command(cuda_bin / "llama-bench", gemma, matrix.for_model(params, 18), delay=0)
    result = llama_bench.measure(cmd, tmp_path / "cell.log", gpus=True, interval_s=0.05)
    assert result["status"] == "ok", result.get("error")
    assert all("CUDA" in r["backends"] and r["gpu_info"] and r["n_gpu_layers"] == 19 for r in result["records"])
    samples = result["samples"]
    assert samples["gpus"] and samples["gpu_error"] is None and samples["vram"]["peak_increase_mib"] > 100
    energy = samples["energy"]
    assert energy["phases"]["generation"]["joules"] > 0 and energy["phases"]["prompt"]["joules"] > 0
    rows = [sampled.energy_columns(samples, rec) for rec in result["records"]]
    assert all(r["energy_j_per_token"] > 0 and r["gpu_power_w"] > 10 for r in rows)


@pytest.mark.gpu
def test_ngl_0_with_nopo_keeps_every_matrix_product_on_the_cpu(cuda_bin: Path, gemma: Path, tmp_path: Path) -> None:
    params = axes.normalize({**DEFAULT_CONFIG["benchmark"]["defaults"], "n_gpu_layers": 0, "no_op_offload": 1,
                             "repetitions": 2, "n_prompt": 512}, axes.BENCHMARK)
    result = llama_bench.measure(llama_bench.command(cuda_bin / "llama-bench", gemma, params, delay=0),
                                tmp_path / "cell.log", gpus=True)
    assert result["status"] == "ok", result.get("error")
    assert all(r["n_gpu_layers"] == 0 and r["no_op_offload"] == 1 for r in result["records"])

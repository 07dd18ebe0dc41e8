"""The ready-made studies in presets/: each plans every job (a dry run) from its own directory, variants
extend one definition, and a CUDA study without nvcc says so before any job."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, snakemake
from llamabench.core import presets
from test_workflow import job_counts

pytestmark = pytest.mark.slow  # runs Snakemake

PRESETS = ROOT / "presets"


def without_nvcc() -> dict[str, str]:
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not shutil.which("nvcc", path=p))
    return {k: v for k, v in os.environ.items() if k != "CUDACXX"} | {"PATH": path}


def plan(preset: str, tmp_path: Path, env: dict[str, str] | None = None) -> tuple[dict[str, int], str]:
    """A dry run in a copy of the preset's directory (the repository's stays clean)."""
    workdir = tmp_path / "presets" / preset
    shutil.copytree(PRESETS, tmp_path / "presets", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("results", ".snakemake"))
    out = snakemake(workdir, "-n", "--cores", "16", env=env)
    return job_counts(out.stdout + out.stderr), out.stdout + out.stderr


@pytest.mark.parametrize("preset", ["lab-report", "lab-report-offline"])
def test_the_lab_report_plans_every_job_and_names_the_missing_nvcc(preset: str, tmp_path: Path) -> None:
    jobs, text = plan(preset, tmp_path, without_nvcc())
    assert "build 'gpu-rpc' asks for CUDA (-DGGML_CUDA=ON) but nvcc was not found" in text
    # 2 builds; cells: defaults, threads 1/2/8, batch 4 more, ngl 5 (one is the defaults') x 3 rounds, per build;
    # serving (2 prompts x 2 concurrencies, one of them the defaults cell) and RPC cells (4) in the same 3 rounds
    assert jobs["build"] == 2 and jobs["bench_cell"] == 66 and jobs["rpc_cell"] == 12 and jobs["serve_cell"] == 24
    # two tuning studies (CPU threads and batch, GPU layers): each opens with its first decision
    assert jobs["tune_round"] == 2 and jobs["tune"] == 2
    workdir = tmp_path / "presets" / preset
    out = snakemake(workdir, "--cores", "2", env=without_nvcc(), check=False)
    assert out.returncode != 0 and "nvcc was not found" in out.stderr and not (workdir / "results").exists()


def test_the_offline_variant_swaps_only_the_source_and_the_model(tmp_path: Path) -> None:
    online, _ = plan("lab-report", tmp_path)
    offline, _ = plan("lab-report-offline", tmp_path)
    assert online == offline
    config = presets.resolve({"extends": "../../lab-report/config/config.yaml"},
                             PRESETS / "lab-report-offline" / "config")
    assert config["sources"]["lab"]["kind"] == "git" and config["models"]["llama-3.2-3b"]["kind"] == "hf"


def test_the_gpu_variant_is_one_cuda_build_with_short_sweeps(tmp_path: Path) -> None:
    jobs, _ = plan("lab-report-gpu", tmp_path)
    assert jobs["build"] == 1 and jobs["bench_cell"] == 10 and "serve_cell" not in jobs and jobs["rpc_cell"] == 8


@pytest.mark.skipif(shutil.which("glslc") is None, reason="the Vulkan variant's dry run needs glslc (apt-get install "
                    "glslc spirv-headers libvulkan-dev; tests/test_vulkan.py installs them as root)")
def test_the_vulkan_variant_is_the_gpu_variant_with_another_backend(tmp_path: Path) -> None:
    """One setting switches the backend: the same jobs as the CUDA variant, no nvcc asked for, the GPU worker the
    build's first GPU whatever its backend calls it."""
    vulkan, text = plan("lab-report-vulkan", tmp_path, without_nvcc())
    gpu, _ = plan("lab-report-gpu", tmp_path)
    assert vulkan == gpu and "nvcc was not found" not in text
    config = presets.resolve({"extends": "config.yaml"}, PRESETS / "lab-report-vulkan" / "config")
    assert config["builds"]["gpu-rpc"]["cmake_options"] == ["-DGGML_VULKAN=ON", "-DGGML_RPC=ON"]
    workers = config["rpc"]["topologies"]["cpu-and-gpu"]["workers"]
    assert [w["device"] for w in workers] == ["CPU", "GPU0"]


def test_the_cpu_variant_needs_no_gpu_and_tunes_the_cpu_with_two_cpu_rpc_workers(tmp_path: Path) -> None:
    jobs, text = plan("lab-report-cpu", tmp_path, without_nvcc())
    assert "nvcc was not found" not in text
    # cells: defaults, threads 1/2/8, batch 4 more = 10 x 3 rounds; RPC: both workers, one, -dev none x 3 rounds
    assert jobs["build"] == 1 and jobs["bench_cell"] == 30 and jobs["rpc_cell"] == 9 and jobs["serve_cell"] == 12
    assert jobs["tune_round"] == 1 and jobs["tune"] == 1
    config = presets.resolve({"extends": "config.yaml"}, PRESETS / "lab-report-cpu" / "config")
    workers = config["rpc"]["topologies"]["two-cpu"]["workers"]
    assert [w["device"] for w in workers] == ["CPU", "CPU"] and list(config["tune"]) == ["cpu-settings"]


def test_extending_replaces_kinded_and_empty_entries_and_null_removes() -> None:
    base = {"models": {"m": {"kind": "hf", "repo_id": "r", "filename": "f"}}, "builds": {"a": {}, "b": {}},
            "serving": {"scenarios": {"s": {"concurrency": [1]}}, "timeout": 5}}
    merged = presets.merge(base, {"models": {"m": {"kind": "synthetic", "shape": "llama-3.2-1b"}},
                                  "builds": {"b": None}, "serving": {"scenarios": {}}})
    assert merged == {"models": {"m": {"kind": "synthetic", "shape": "llama-3.2-1b"}}, "builds": {"a": {}},
                      "serving": {"scenarios": {}, "timeout": 5}}


def test_a_config_that_extends_itself_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ValueError, match="extends itself"):
        presets.resolve({"extends": "a.yaml"}, tmp_path)

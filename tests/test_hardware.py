"""What the node has, detected for real on this machine (nvcc maybe, a GPU never in CI), and the decisions
that follow from it: the CUDA architectures to compile for, and CUDA cells skipped without a GPU."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import snakemake, write_config
from llamabench.prepare import builds
from llamabench.core import records
from llamabench.measure import gpus as gpu_query
from llamabench.prepare import toolchain
from llamabench.core.errors import UserError

pytestmark = pytest.mark.slow  # runs Snakemake

CUDA = ["-DGGML_CUDA=ON", "-DGGML_RPC=ON"]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The hardware rule's own record of this machine, written through the workflow."""
    workdir = tmp_path_factory.mktemp("hardware")
    write_config(workdir, {})
    snakemake(workdir, "--cores", "1", "results/hardware/local.json")
    return records.read(workdir / "results/hardware/local.json", "hardware")


def test_the_record_says_what_this_machine_has(node: dict) -> None:
    assert node["platform"] == "local"
    assert (node["nvcc"] is not None) == (shutil.which("nvcc") is not None)
    if node["nvcc"]:
        assert node["nvcc"]["version"] and Path(node["nvcc"]["path"]).exists()
    assert bool(node["gpus"]) == (node["gpu_error"] is None)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has an NVIDIA driver")
def test_without_a_gpu_cuda_cells_are_skipped_and_the_architecture_must_be_given(node: dict) -> None:
    why = gpu_query.gpu_missing(node)
    assert why and "not GPU numbers" in why and node["host"]["hostname"] in why
    with pytest.raises(UserError, match="CMAKE_CUDA_ARCHITECTURES"):
        builds.cuda_architectures(CUDA, node, "cuda")
    assert builds.cuda_architectures([*CUDA, "-DCMAKE_CUDA_ARCHITECTURES=86"], node, "cuda")[-1].endswith("=86")
    assert builds.cuda_architectures(["-DGGML_RPC=ON"], node, "cpu") == ["-DGGML_RPC=ON"]


@pytest.mark.skipif(shutil.which("nvcc") is None or shutil.which("nvidia-smi") is not None,
                    reason="needs nvcc without a GPU (a build host)")
def test_a_dry_run_with_nvcc_but_no_gpu_says_the_cuda_cells_will_be_skipped(tmp_path: Path) -> None:
    write_config(tmp_path, {"builds": {"cpu": {"cmake_options": []}, "cuda": {"cmake_options": CUDA}},
                            "rpc": {"topologies": {}}})
    out = snakemake(tmp_path, "-n", "--cores", "2")
    assert "nvcc is here but no GPU" in out.stdout + out.stderr


NVCC = shutil.which("nvcc")


@pytest.mark.skipif(NVCC is None or not toolchain.missing_cuda_parts(NVCC),
                    reason="needs an nvcc whose toolkit lacks a library llama.cpp links (this VM's pip-wheel nvcc)")
def test_a_cuda_build_whose_toolkit_lacks_cublas_stops_before_any_job_naming_it(tmp_path: Path) -> None:
    """This machine's nvcc comes without cuBLAS: CMake would fail minutes into the build; the run stops first."""
    write_config(tmp_path, {"builds": {"cpu": {"cmake_options": []}, "cuda": {"cmake_options": CUDA}},
                            "rpc": {"topologies": {}}})
    out = snakemake(tmp_path, "--cores", "2", check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "build 'cuda' asks for CUDA, and the toolkit of" in text and "cuBLAS" in text
    assert not (tmp_path / "results").exists()


def test_the_query_parses_published_real_output_of_two_gpus() -> None:
    """tests/data/README.md: two GPUs (a TITAN V and an RTX 5880 Ada), names with spaces."""
    text = (Path(__file__).parent / "data" / "nvidia-smi-query-gpu-2x.csv").read_text()
    header, *lines = text.splitlines()
    fields = [f.strip() for f in header.split(",")]
    gpus = gpu_query.parse_query("\n".join(lines) + "\n", fields)
    assert [g["name"] for g in gpus] == ["NVIDIA TITAN V", "NVIDIA RTX 5880 Ada Generation"]
    assert [g["compute_cap"] for g in gpus] == ["7.0", "8.9"] and gpus[1]["index"] == "1"
    node = {"gpus": [{**g, "memory.total": None} for g in gpus], "gpu_error": None, "host": {"hostname": "n"}}
    assert gpu_query.gpu_missing(node) is None
    assert builds.cuda_architectures(CUDA, node, "cuda")[-1] == "-DCMAKE_CUDA_ARCHITECTURES=70;89"


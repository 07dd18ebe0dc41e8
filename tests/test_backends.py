"""The GPU backend registry on recorded real ``--list-devices`` output (tests/data/README.md): which devices are a
build's GPUs, which are software renderers, what a cell may run on, and the variables a build's processes get."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamabench.core import backends
from llamabench.prepare import builds

LISTINGS = {head.strip(): body for head, body in
            (part.split("\n", 1) for part in
             (Path(__file__).parent / "data" / "list-devices-0c1e570-vulkan-lavapipe.txt").read_text()
             .split("# GGML_VK_VISIBLE_DEVICES")[1:])}
VULKAN = ["-DGGML_VULKAN=ON", "-DGGML_RPC=ON"]


def listed(which: str) -> dict:
    text = LISTINGS[which]
    return {"tool": "llama-bench", "output": text, "devices": builds.parse_devices(text)}


def test_each_backend_is_found_from_its_cmake_option() -> None:
    assert backends.of(["-DGGML_RPC=ON"]) is None and backends.of([]) is None
    assert backends.of(VULKAN).name == "vulkan" and backends.of(["-DGGML_CUDA=ON"]).nvml
    assert backends.of(["-DGGML_HIP=ON"]).device_prefix == "ROCm"
    assert backends.of(["-DGGML_VULKAN=ON", "-DGGML_VULKAN=OFF"]) is None  # the last one wins, as in CMake
    assert [b.name for b in backends.BACKENDS.values() if b.split_row] == ["sycl"]


def test_lavapipe_is_seen_only_where_named_and_is_a_software_device() -> None:
    vulkan = backends.BACKENDS["vulkan"]
    assert backends.gpu_devices(vulkan, listed("unset")["devices"]) == []
    [one] = backends.gpu_devices(vulkan, listed("=0")["devices"])
    assert (one["name"], one["total_mib"], one["free_mib"]) == ("Vulkan0", "2048", "2048")
    assert backends.software_renderer(one) == "llvmpipe"
    assert backends.software_label([one]) == "software GPU (lavapipe): a functional check, not GPU performance"
    assert [d["name"] for d in backends.gpu_devices(vulkan, listed("=0,0")["devices"])] == ["Vulkan0", "Vulkan1"]
    hardware = {"name": "CUDA0", "description": "NVIDIA H100 80GB HBM3", "total_mib": "81079", "free_mib": "80520"}
    assert backends.software_label([hardware]) is None
    assert backends.gpu_devices(vulkan, [hardware]) == []  # a CUDA device is not a Vulkan build's


@pytest.mark.parametrize(("which", "opt_in", "why"), [
    ("unset", False, "lists no Vulkan device on this host"),
    ("=0", False, "set builds.lava.software_device: true"),
    ("=0", True, None),
])
def test_a_cell_runs_only_on_a_device_of_its_backend_and_software_only_by_opt_in(which: str, opt_in: bool,
                                                                                 why: str | None) -> None:
    build = {"name": "lava", "options": VULKAN, "devices": listed(which), "software_opt_in": opt_in}
    found = backends.unusable(build)
    assert (found is None) if why is None else (why in found)
    assert backends.unusable({"name": "cpu", "options": ["-DGGML_RPC=ON"], "devices": listed("unset")}) is None


def test_the_first_device_takes_the_layers_and_its_reported_free_memory_splits_them() -> None:
    build = {"name": "lava", "options": VULKAN, "devices": listed("=0,0")}
    assert backends.main_device(build) == "Vulkan0"
    assert backends.recorded_free_mib(build) == {"Vulkan0": 2048.0, "Vulkan1": 2048.0}
    assert backends.main_device({"name": "cpu", "options": [], "devices": listed("=0")}) is None


def test_visible_devices_become_the_backends_own_variable() -> None:
    assert backends.environment(backends.of(VULKAN), "0,0") == {"GGML_VK_VISIBLE_DEVICES": "0,0"}
    assert backends.environment(backends.of(["-DGGML_CUDA=ON"]), "1") == {"CUDA_VISIBLE_DEVICES": "1"}
    assert backends.environment(backends.of(VULKAN), None) == {}
    assert backends.environment(None, "0") == {}

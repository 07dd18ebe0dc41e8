"""The GPU backend registry on recorded real ``--list-devices`` output (tests/data/README.md): which devices are a
build's GPUs, which are software renderers, what a cell may run on, and the variables a build's processes get."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamabench.core import axes, backends
from llamabench.core.errors import Unsupported, UserError
from llamabench.measure import rpc_workers
from llamabench.prepare import builds, vulkan

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


def test_offloaded_layers_are_split_as_llama_cpp_splits_them() -> None:
    """By each device's reported free memory, by tensor_split where set, to the main GPU alone with split_mode
    none; one listed device takes them all, a CPU build none."""
    two = {"name": "lava", "options": VULKAN, "devices": listed("=0,0")}
    free = backends.recorded_free_mib(two)
    assert free == {"Vulkan0": 2048.0, "Vulkan1": 2048.0}

    def split(**params: object) -> list:
        return backends.split_devices(two, params, axes.BENCHMARK, free)

    assert split() == [["Vulkan0", 2048.0], ["Vulkan1", 2048.0]]
    assert split(tensor_split="3/1") == [["Vulkan0", 3.0], ["Vulkan1", 1.0]]
    assert split(tensor_split="0/1") == [["Vulkan1", 1.0]]
    assert split(split_mode="none", main_gpu=1) == [["Vulkan1", 1.0]]
    one = {**two, "devices": listed("=0")}
    assert backends.split_devices(one, {"tensor_split": "3/1"}, axes.BENCHMARK, {}) == [["Vulkan0", 1.0]]
    assert backends.split_devices({**two, "options": []}, {}, axes.BENCHMARK, free) == []


def test_a_cells_device_chooses_the_gpus_its_layers_go_to_and_main_gpu_counts_those() -> None:
    """-dev Vulkan1: the layers on Vulkan1 alone, -mg 0 that same device (llama.cpp numbers the chosen ones);
    Vulkan1/Vulkan0: split over both in that order; none: no GPU. A device the build does not list, or any on a
    CPU build, skips the cell with the build's list."""
    two = {"name": "lava", "options": VULKAN, "devices": listed("=0,0"), "software_opt_in": True}
    free = backends.recorded_free_mib(two)

    def split(**params: object) -> list:
        return backends.split_devices(two, params, axes.BENCHMARK, free)

    assert split(device="Vulkan1") == [["Vulkan1", 1.0]]
    assert split(device="Vulkan1/Vulkan0", split_mode="none", main_gpu=0) == [["Vulkan1", 1.0]]
    assert split(device="Vulkan1/Vulkan0", tensor_split="3/1") == [["Vulkan1", 3.0], ["Vulkan0", 1.0]]
    assert split(device="none") == [] and not backends.offloads(two, {"device": "none"}, axes.BENCHMARK)
    assert backends.offloads(two, {"device": "Vulkan0"}, axes.SERVING)
    assert backends.unusable(two, {"device": "Vulkan0/Vulkan1"}, axes.SERVING) is None
    assert backends.unusable(two, {"device": "Vulkan2"}) == \
        "build 'lava' has no Vulkan2: its --list-devices shows Vulkan0, Vulkan1"
    cpu = {"name": "cpu", "options": ["-DGGML_RPC=ON"], "devices": listed("unset")}
    assert backends.unusable(cpu, {"device": "none"}) is None
    assert backends.unusable(cpu, {"device": "CUDA0"}) == "build 'cpu' is a CPU build: it has no CUDA0"
    # each tool's spelling: one test's devices joined by / in llama-bench, by , in llama-server
    params = {**{a.name: a.default for a in axes.of(axes.BENCHMARK)}, "device": "Vulkan1/Vulkan0"}
    assert axes.arguments(params, axes.BENCHMARK, axes.LLAMA_BENCH, "-dev, --device <dev0/dev1/...>")[-2:] == \
        ["-dev", "Vulkan1/Vulkan0"]
    served = {**{a.name: a.default for a in axes.of(axes.SERVING)}, "device": "Vulkan1/Vulkan0"}
    server_help = "--flash-attn [on|off|auto] -dev, --device <dev1,dev2,..>"
    assert axes.arguments(served, axes.SERVING, axes.LLAMA_SERVER, server_help)[-2:] == ["--device", "Vulkan1,Vulkan0"]
    with pytest.raises(Unsupported, match="no -dev"):
        axes.arguments(params, axes.BENCHMARK, axes.LLAMA_BENCH, "-ngl, --n-gpu-layers <n>")


def test_visible_devices_become_the_backends_own_variable() -> None:
    assert backends.environment(backends.of(VULKAN), "0,0") == {"GGML_VK_VISIBLE_DEVICES": "0,0"}
    assert backends.environment(backends.of(["-DGGML_CUDA=ON"]), "1") == {"CUDA_VISIBLE_DEVICES": "1"}
    assert backends.environment(backends.of(VULKAN), None) == {}
    assert backends.environment(None, "0") == {}


def test_a_workers_gpu0_is_its_builds_first_gpu_whatever_its_backend_calls_it() -> None:
    build = {"name": "lava", "options": VULKAN, "devices": listed("=0,0"), "bin_dir": "/b",
             "binaries": {"rpc_server": "ggml-rpc-server"}, "environment": {"GGML_VK_VISIBLE_DEVICES": "0,0"}}
    spec = {"kind": "local", "build": "lava", "device": "GPU1"}
    resolved = rpc_workers.resolve(spec, {"lava": build})
    assert resolved["device"] == "Vulkan1" and resolved["environment"] == {"GGML_VK_VISIBLE_DEVICES": "0,0"}
    assert rpc_workers.resolve({**spec, "device": "CPU"}, {"lava": build})["device"] == "CPU"
    none = {**build, "devices": listed("unset")}  # no GPU listed: kept, and the cell is skipped as unusable
    assert rpc_workers.resolve({**spec, "device": "GPU0"}, {"lava": none})["device"] == "GPU0"


def test_a_machine_without_the_vulkan_tools_is_told_every_missing_part_in_one_sentence(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(vulkan, "PREFIXES", (str(tmp_path),))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("VULKAN_SDK", raising=False)
    with pytest.raises(UserError) as err:
        vulkan.tools("lava")
    text = str(err.value)
    assert text.startswith("build 'lava' asks for Vulkan (-DGGML_VULKAN=ON) but this machine has no glslc")
    assert all(part in text for part in ("libvulkan.so", "SPIRV-Headers", "vulkan.hpp", "apt-get install glslc"))


def test_headers_too_old_for_the_tree_are_told_apart_by_the_symbol_it_uses(tmp_path: Path) -> None:
    """Debian 12's vulkan.hpp 1.3.239 lacks ``struct LayerSettingEXT``; 1.4.309's declares it in vulkan_structs.hpp
    (line 57099). The lines are copied from the two packages' real headers."""
    old, new = tmp_path / "old" / "vulkan", tmp_path / "new" / "vulkan"
    old.mkdir(parents=True)
    new.mkdir(parents=True)
    (old / "vulkan_structs.hpp").write_text("  struct LayerProperties\n  {\n")
    (new / "vulkan_structs.hpp").write_text("  struct LayerSettingEXT\n  {\n")
    (new / "vulkan_core.h").write_text("#define VK_HEADER_VERSION 309\n"
                                       "#define VK_HEADER_VERSION_COMPLETE VK_MAKE_API_VERSION(0, 1, 4, "
                                       "VK_HEADER_VERSION)\n")
    assert not vulkan.declares(old.parent) and vulkan.declares(new.parent)
    assert vulkan.header_version(new.parent) == "1.4.309" and vulkan.header_version(old.parent) is None

"""Memory predicted before a cell starts, against llama.cpp's logged buffers (recorded real logs, the real model)
and the fit decision; the workflow's side is in tests/test_workflow.py (a cell predicted not to fit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT
from llamabench.core import files
from llamabench.derive import buffers, memory, memory_accuracy, memory_fit
from llamabench.measure import fit_params, gpus
from llamabench.core import model_shape

DATA = ROOT / "tests" / "data"
CPU_LOG = DATA / "buffers-0c1e570-cpu-gemma3-270m-ub128.log"
RPC_LOG = DATA / "buffers-0c1e570-cpu-rpc-gemma3-270m-two-workers.log"
VULKANINFO = DATA / "vulkaninfo-lavapipe-mesa-22.3.6.txt"
LAVAPIPE_LOG = DATA / "buffers-0c1e570-vulkan-lavapipe-gemma3-270m-ngl-all.log"
# The recorded cell's parameters (tests/data/README.md).
CELL = {"threads": 2, "batch_size": 2048, "ubatch_size": 128, "n_gpu_layers": 99, "flash_attn": "auto",
        "cache_type_k": "f16", "cache_type_v": "f16", "n_prompt": 128, "n_gen": 32, "n_depth": 0, "repetitions": 3}


@pytest.fixture(scope="module")
def gemma_shape(gemma: Path) -> dict:
    return model_shape.shape(gemma, files.sha256_file(gemma.resolve()))


def test_logged_buffers_are_read_per_context() -> None:
    contexts = buffers.logged(CPU_LOG.read_text())
    assert [c["devices"]["CPU"]["compute"] for c in contexts] == [128.63, 32.16]
    assert all(c["buffers"] == {"CPU_Mapped": 235.16, "CPU_REPACK": 12.66} for c in contexts)
    assert contexts[0]["devices"]["CPU"] == {"weights": 247.82, "output": 1.0, "kv": 4.5, "compute": 128.63}


def test_logged_buffers_of_rpc_workers_are_theirs() -> None:
    """Each worker's weights, K/V (two caches: sliding-window layers apart) and compute under its own name."""
    first = buffers.logged(RPC_LOG.read_text())[0]["devices"]
    workers = sorted(name for name in first if name.startswith("RPC"))
    assert len(workers) == 2 and first["CPU"]["weights"] == 170.0  # the token embedding stays on the host
    assert sum(first[w]["kv"] for w in workers) == 4.5
    assert all({"weights", "kv", "compute"} <= set(first[w]) for w in workers)


def test_rpc_workers_get_the_layers_their_free_memory_buys(gemma_shape: dict) -> None:
    """Two loopback workers reporting the same free memory: the first takes layers 0-9, the second 10-17 and
    the output layer, with its copy of the tied embedding. Each worker's weights, K/V and compute against what
    the recorded log says it was given."""
    text = RPC_LOG.read_text()
    workers = buffers.rpc_devices(text)
    assert [free for _, free in workers] == [24105.0, 24105.0]
    runs = memory_fit.bench_runs({**CELL, "ubatch_size": 512}, 19, [], ["avx2"])
    for run, used in zip(runs, buffers.logged(text), strict=True):
        predicted = memory.predict(gemma_shape, {**run, "devices": workers})["devices"]
        assert set(predicted) == set(used["devices"]) == {"CPU", *(name for name, _ in workers)}
        for device, parts in used["devices"].items():
            for component, mib in parts.items():
                assert memory_accuracy.within(predicted[device][component], mib), (device, component)
            assert predicted[device]["weights"] == pytest.approx(parts["weights"], abs=0.02)


def test_the_prediction_matches_the_recorded_buffers(gemma_shape: dict) -> None:
    """The real model's shape and the recorded cell's settings: every buffer of both contexts (the prompt test's
    and the generation test's) within tolerance; weights and K/V to the hundredth of a MiB."""
    runs = memory_fit.bench_runs(CELL, 0, [], ["avx2"])  # the recording machine's (tests/data/README.md)
    logged = buffers.logged(CPU_LOG.read_text())
    for run, used in zip(runs, logged, strict=True):
        predicted = memory.predict(gemma_shape, run)
        assert predicted["buffers"] == used["buffers"]
        for component in memory.COMPONENTS:
            want, got = used["devices"]["CPU"][component], predicted["devices"]["CPU"][component]
            assert memory_accuracy.within(got, want), (component, got, want)
        assert predicted["devices"]["CPU"]["kv"] == used["devices"]["CPU"]["kv"]


def test_without_mmap_repacked_weights_are_not_read_twice(gemma_shape: dict) -> None:
    run = memory_fit.bench_runs(CELL, 0, [], ["avx2"])[0]
    mapped, loaded = memory.predict(gemma_shape, run), memory.predict(gemma_shape, {**run, "mmap": False})
    assert loaded["buffers"]["CPU"] + loaded["buffers"]["CPU_REPACK"] == pytest.approx(mapped["buffers"]["CPU_Mapped"],
                                                                                        abs=0.02)
    no_avx2 = memory.predict(gemma_shape, {**run, "cpu_flags": []})
    assert "CPU_REPACK" not in no_avx2["buffers"]


def test_sliding_window_layers_keep_window_plus_ubatch_cells(gemma_shape: dict) -> None:
    """Gemma 3: 3 of 18 layers attend to the whole context; the other 15 keep 512 + ubatch cells, padded."""
    run = {**memory_fit.bench_runs(CELL, 0, [], [])[0], "n_ctx": 32768, "n_ubatch": 512}
    kv = memory.predict(gemma_shape, run)["devices"]["CPU"]["kv"]
    per_cell_layer = 2 * 256 * 2 / memory.MIB  # K and V of one 256-wide head, f16
    assert kv == pytest.approx(3 * 32768 * per_cell_layer + 15 * 1024 * per_cell_layer, abs=0.01)
    q4 = memory.predict(gemma_shape, {**run, "type_k": "q4_0", "type_v": "q4_0"})["devices"]["CPU"]["kv"]
    assert q4 == pytest.approx(kv * 18 / 32 / 2, rel=1e-3)  # 18 bytes per 32 values against 64


def test_a_cell_over_its_limit_is_not_started_unless_asked() -> None:
    predicted = [{"resident": {"CPU": 700.0}}, {"resident": {"CPU": 420.0}}]
    fit = memory_fit.decide(predicted, {"CPU": 512.0}, run_anyway=False)
    assert not fit["fits"] and not fit["started"] and fit["predicted_peak_mib"] == {"CPU": 700.0}
    assert "CPU predicted 700 MiB, more than its 512 MiB" in memory_fit.reason(fit)
    assert memory_fit.decide(predicted, {"CPU": 512.0}, run_anyway=True)["started"]
    assert memory_fit.decide(predicted, {"CPU": 800.0}, run_anyway=False)["fits"]


def test_an_unknown_cache_type_is_not_predicted_and_the_cell_starts(gemma_shape: dict) -> None:
    runs = memory_fit.bench_runs({**CELL, "cache_type_k": "nonsense"}, 0, [], [])
    assert memory_fit.predictions(gemma_shape, runs) == []
    assert memory_fit.decide([], {"CPU": 1.0}, run_anyway=False)["started"]


def test_llama_fit_params_projection_is_read() -> None:
    """A real ``--fit-print on`` (tests/data/README.md): on a CPU-only host only the host's row, as the CPU's."""
    rows = fit_params.parse((DATA / "fit-print-0c1e570-gemma3-270m-c4096.txt").read_text())
    assert rows == {"CPU": {"weights": 222.0, "kv": 27.0, "compute": 514.0}}


def test_a_vulkan_devices_largest_tensor_is_read_from_vulkaninfo(monkeypatch: pytest.MonkeyPatch) -> None:
    """lavapipe takes no tensor over its maxStorageBufferRange (128 MiB); a device with 64-bit indexing in shaders
    only its maxBufferSize, as ggml-vulkan's supports_op checks them."""
    text = VULKANINFO.read_text()
    assert gpus.parse_vulkaninfo(text) == {"llvmpipe (LLVM 15.0.6, 256 bits)": 128 * 1024 * 1024}
    wide = text.replace("Device Extensions: count =", "VK_EXT_shader_64bit_indexing : extension revision 1\n"
                                                      "Device Extensions: count =")
    assert gpus.parse_vulkaninfo(wide) == {"llvmpipe (LLVM 15.0.6, 256 bits)": 0xFFFFFFFF}
    build = {"options": ["-DGGML_VULKAN=ON"], "devices": {"devices": [
        {"name": "Vulkan0", "description": "llvmpipe (LLVM 15.0.6, 256 bits)", "total_mib": "2048",
         "free_mib": "2048"}]}}
    assert gpus.tensor_limits({**build, "options": ["-DGGML_RPC=ON"]}) == {}  # a CPU build has none
    assert set(gpus.tensor_limits(build)) <= {"Vulkan0"}  # where this machine has vulkaninfo and lavapipe
    # the backend registry names the tool (core/backends.py tensor_limits): here it says what the recorded one did
    monkeypatch.setitem(gpus.LIMIT_READERS, "vulkaninfo", lambda: gpus.parse_vulkaninfo(text))
    assert gpus.tensor_limits(build) == {"Vulkan0": 128 * 1024 * 1024}
    assert gpus.tensor_limits({**build, "options": ["-DGGML_CUDA=ON"]}) == {}  # CUDA names no such tool


def test_a_weight_over_the_devices_largest_tensor_stays_on_the_cpu(gemma_shape: dict) -> None:
    """Gemma's tied output layer (the 170 MiB Q8_0 embedding) offloaded to lavapipe, which takes no tensor over
    128 MiB: llama.cpp kept it on the CPU (the recorded log: Vulkan0 65.16 MiB of weights), and so does the
    prediction given the device's limit; without it, the prediction puts a copy on the device."""
    cell = {**CELL, "ubatch_size": 512, "n_prompt": 8, "n_gen": 4, "repetitions": 1}
    limit = gpus.parse_vulkaninfo(VULKANINFO.read_text())["llvmpipe (LLVM 15.0.6, 256 bits)"]
    runs = memory_fit.bench_runs(cell, 19, [["Vulkan0", 2048.0]], ["avx2"], {"Vulkan0": limit})
    for run, used in zip(runs, buffers.logged(LAVAPIPE_LOG.read_text()), strict=True):
        predicted = memory.predict(gemma_shape, run)
        assert predicted["buffers"] == pytest.approx(used["buffers"], abs=0.01)
        for device, parts in used["devices"].items():
            for component, mib in parts.items():
                assert memory_accuracy.within(predicted["devices"][device][component], mib), (device, component)
        unlimited = memory.predict(gemma_shape, {key: value for key, value in run.items() if key != "max_tensor_bytes"})
        assert unlimited["buffers"]["Vulkan0"] > used["buffers"]["Vulkan0"] + 160  # the copy it did not make

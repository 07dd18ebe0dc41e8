"""The GPU half on a real Vulkan device of this machine: Mesa's lavapipe, a software GPU on the CPU.

The Vulkan build (llama.cpp's ggml-vulkan, shaders compiled by glslc) is built once through the build cache, with
Debian 13's Vulkan headers fetched into the cache where the system's are too old for the tree. Its devices come
from its own ``--list-devices``; lavapipe is seen only where ``visible_devices`` names it, and measured only where
the config opts in (``software_device``), every record, table and finding then labelled a functional check.

Skipped, with the reason, where the packages (glslc, spirv-headers, libvulkan-dev, mesa-vulkan-drivers) cannot be
installed (not root, no apt-get, no package mirror).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import snakemake, write_config
from llamabench.core import backends, records
from llamabench.prepare import builds

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake

# vulkan-tools: vulkaninfo, which says the largest tensor a device takes (lavapipe: 128 MiB)
PACKAGES = ("glslc", "spirv-headers", "libvulkan-dev", "mesa-vulkan-drivers", "vulkan-tools")
VULKAN_OPTIONS = ["-DGGML_VULKAN=ON", "-DGGML_RPC=ON"]
TINY = {"layers": 2, "embedding": 256, "heads": 4, "kv_heads": 2, "ffn": 512, "vocab": 1024, "context": 2048}


@pytest.fixture(scope="session")
def vulkan_packages() -> None:
    """Debian's Vulkan build tools and the lavapipe driver, installed with apt-get where missing."""
    missing = [p for p in PACKAGES if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0] \
        if shutil.which("dpkg") else list(PACKAGES)
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"the Vulkan tests need {', '.join(missing)}, which only root can install with apt-get")
    install = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], capture_output=True,
                             text=True, timeout=900, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if install.returncode != 0:
        pytest.skip(f"{', '.join(missing)} could not be installed: {install.stderr.strip()[-300:]}")


@pytest.fixture(scope="session")
def vulkan_build(vulkan_packages: None, source_manifest: dict[str, Any]) -> dict[str, Any]:
    """The default source's Vulkan + RPC build: the workflow's cache key for these options, so either fills it."""
    return builds.cached_build(source_manifest, "vulkan", VULKAN_OPTIONS, threads=os.cpu_count() or 2)


def last_rounds(table: pd.DataFrame) -> pd.DataFrame:
    """Each cell's last round: a round another process disturbed is measured again in one more, with its partner
    (a CI run's RPC cell: others took 11 % of the CPU), and the earlier ones stay in the table."""
    keys = ["build", "model", "base_cell", *(["test"] if "test" in table else [])]
    ordered = table.sort_values("round")
    earlier = ordered[ordered.duplicated(keys, keep="last")].index
    assert set(table.loc[earlier, "status"]) <= {"ok", "disturbed"}
    return table.drop(earlier)


def test_lavapipe_is_listed_only_where_named_and_labelled_software(vulkan_build: dict[str, Any]) -> None:
    bin_dir = Path(vulkan_build["cache_dir"]) / "bin"
    hidden = builds.list_devices(bin_dir, vulkan_build["binaries"], {})
    named = builds.list_devices(bin_dir, vulkan_build["binaries"], {"GGML_VK_VISIBLE_DEVICES": "0"})
    twice = builds.list_devices(bin_dir, vulkan_build["binaries"], {"GGML_VK_VISIBLE_DEVICES": "0,0"})
    vulkan = backends.BACKENDS["vulkan"]
    assert backends.gpu_devices(vulkan, hidden["devices"]) == []  # a CPU-type device is skipped unless named
    [device] = backends.gpu_devices(vulkan, named["devices"])
    assert device["name"] == "Vulkan0" and "llvmpipe" in device["description"] and int(device["total_mib"]) > 0
    assert [d["name"] for d in backends.gpu_devices(vulkan, twice["devices"])] == ["Vulkan0", "Vulkan1"]
    assert backends.software_label([device]) == "software GPU (lavapipe): a functional check, not GPU performance"
    record = {"name": "vulkan", "options": vulkan_build["options"], "devices": hidden}
    assert "lists no Vulkan device" in backends.unusable(record)
    assert "builds.vulkan.software_device: true" in backends.unusable({**record, "devices": named})
    assert backends.unusable({**record, "devices": named, "software_opt_in": True}) is None
    headers = vulkan_build["vulkan_headers"]
    assert headers["version"] and Path(headers["include_dir"], "vulkan", "vulkan.hpp").is_file()


def test_an_offload_sweep_on_lavapipe_through_the_workflow(vulkan_build: dict[str, Any], tmp_path: Path) -> None:
    """A tiny synthetic model at 0, 50 % and all layers on the software device, labelled in every table and
    finding; the same build without the opt-in has its cells skipped with the key to set."""
    config = {
        "builds": {"vulkan": {"cmake_options": VULKAN_OPTIONS, "visible_devices": "0", "software_device": True},
                   "vulkan-no-opt-in": {"cmake_options": VULKAN_OPTIONS, "visible_devices": "0"},
                   # lavapipe twice: two devices, one heap in truth
                   "vulkan-two": {"cmake_options": VULKAN_OPTIONS, "visible_devices": "0,0", "software_device": True}},
        "models": {"tiny-llama": {"kind": "synthetic", "architecture": "llama", **TINY, "type": "Q8_0"}},
        "smoke": {"n_predict": 4},
        # max_share: the test config's (.test/config/config.yaml: this VM's steal bursts over sub-second windows)
        "benchmark": {"builds": [], "repetitions": 1, "rounds": 1, "exclude": [], "disturbance": {"max_share": 0.25},
                      "defaults": {"n_prompt": 16, "n_gen": 4, "n_gpu_layers": 0},
                      "groups": {"offload": {"builds": ["vulkan"], "n_gpu_layers": ["50%", "all"]},
                                 "split": {"builds": ["vulkan-two"], "n_gpu_layers": ["all"],
                                           "tensor_split": ["1/2"]},
                                 # -dev: the second device alone, and none (a GPU build on the CPU alone)
                                 "device": {"builds": ["vulkan-two"], "n_gpu_layers": ["all"],
                                            "device": ["Vulkan1", "none"]},
                                 # a K/V cache of ~2.4 GiB: more than the 2048 MiB the device reports free
                                 "too-big": {"builds": ["vulkan"], "n_gpu_layers": ["all"], "n_depth": [2_500_000]}}},
        # how many layers to offload, as a tuning study decides it (two rounds: plumbing, not statistics)
        "tune": {"gpu-layers": {"builds": ["vulkan"], "objective": {"metric": "tg"},
                                "space": {"n_gpu_layers": [0, "all"]}, "budget": {"rounds": 2}, "min_rounds": 2,
                                "workload": {"n_prompt": 16, "n_gen": 4}}},
        # offload changes the numerics, but lavapipe's llama-perplexity takes ~45 s a reference: quality cells are
        # tested on the CPU build (tests/test_workflow.py)
        "quality": {"enabled": False},
        # a serving cell with every layer offloaded, to the device named (--device)
        "serving": {"builds": ["vulkan"], "scenarios": {"offloaded": {"n_gpu_layers": ["all"], "device": ["Vulkan0"]}},
                    "defaults": {"prompt_tokens": 16, "max_tokens": 4, "requests": 2, "ctx_size": 512,
                                 "parallel": 1}},
        # the lab report's CPU+GPU RPC: one worker on the (software) GPU, one on the CPU, beside the local partner
        "rpc": {"cells": [{}], "topologies": {"cpu-gpu": {
            "client": "vulkan", "devices": ["RPC0/RPC1"],
            "workers": [{"kind": "local", "build": "vulkan", "device": "Vulkan0"},
                        {"kind": "local", "build": "vulkan", "device": "CPU", "threads": 1}]}}},
    }
    write_config(tmp_path, config)
    snakemake(tmp_path, "--cores", "2", timeout=2400)
    results = tmp_path / "results"
    build = records.read(results / "builds/vulkan/manifest.json", "build")
    assert build["backend"] == "vulkan" and build["environment"] == {"GGML_VK_VISIBLE_DEVICES": "0"}
    assert build["software_device"].startswith("software GPU (lavapipe)") and build["software_opt_in"]
    summary = last_rounds(pd.read_csv(results / "summary.csv"))
    ours = summary[summary["build"] == "vulkan"]
    measured = ours[~ours["cell"].str.contains("_d2500000_")]
    assert set(measured["status"]) == {"ok"} and ours["software_device"].str.startswith("software GPU").all()
    assert sorted(set(measured["offloaded_layers"])) == [0, 2, 3]  # 2 blocks + the output layer: 0, 50 %, all
    cells = [records.read(p, "bench_cell") for p in (results / "cells/vulkan/tiny-llama").glob("*.json")]
    assert all("Vulkan" in r["backends"] for c in cells for r in c["llama_bench"]["records"])
    assert {c["build"]["software_device"] for c in cells} == {build["software_device"]}
    # the largest tensor lavapipe takes (vulkaninfo), which the predictor places by
    offloaded = [run for c in cells if c["offload"]["offloaded_layers"] for run in c["memory"]["runs"]]
    assert offloaded and all(run["max_tensor_bytes"] == {"Vulkan0": 128 * 1024 * 1024} for run in offloaded)
    # two devices, the layers split 1:2 (block 0 on Vulkan0; block 1 and the output layer on Vulkan1, as llama.cpp
    # places them): each device's buffers predicted and logged
    two = [records.read(p, "bench_cell") for p in (results / "cells/vulkan-two/tiny-llama").glob("*ts-1-2*.json")]
    assert two and all(c["llama_bench"]["status"] == "ok" for c in two)
    assert all(r["tensor_split"] == "1.00/2.00" for c in two for r in c["llama_bench"]["records"])
    memory = pd.read_csv(results / "memory.csv")
    split = memory[(memory["build"] == "vulkan-two") & memory["cell"].str.contains("ts-1-2")
                   & (memory["predictor"] == "derive/memory.py") & (memory["component"] == "weights")]
    assert {"Vulkan0", "Vulkan1"} <= set(split["device"]) and split["within_tolerance"].all()
    # -dev Vulkan1: every layer there and nothing on Vulkan0, as predicted; -dev none: no layer offloaded
    chosen = memory[(memory["build"] == "vulkan-two") & memory["cell"].str.contains("_dev-Vulkan1")
                    & (memory["predictor"] == "derive/memory.py") & (memory["component"] == "weights")]
    assert "Vulkan1" in set(chosen["device"]) and "Vulkan0" not in set(chosen["device"]), chosen.to_string()
    assert chosen["within_tolerance"].all()
    on = summary[(summary["build"] == "vulkan-two") & summary["device"].notna()].set_index("device")
    assert set(on["status"]) == {"ok"} and set(on.loc[["none"], "offloaded_layers"]) == {0}
    assert set(on.loc[["Vulkan1"], "offloaded_layers"]) == {3}
    study = records.read(results / "tune/gpu-layers.json", "tune")
    [result] = study["results"]
    assert result["spent"]["rounds"] >= 1 and any("n_gpu_layers=all" in c["label"] for c in result["candidates"])
    [too_big] = [records.read(p, "bench_cell") for p in (results / "cells/vulkan/tiny-llama").glob("*_d2500000_*")]
    assert too_big["llama_bench"]["status"] == "predicted_out_of_memory" and not too_big["memory"]["fit"]["started"]
    assert "Vulkan0" in too_big["llama_bench"]["error"]
    skipped = summary[summary["build"] == "vulkan-no-opt-in"]
    assert set(skipped["status"]) == {"skipped"}
    assert skipped["error"].str.contains("builds.vulkan-no-opt-in.software_device: true").all()
    served = last_rounds(pd.read_csv(results / "serving_summary.csv"))
    assert set(served["status"]) == {"ok"} and served["software_device"].notna().all()
    assert set(served["device"].dropna()) == {"Vulkan0"}  # the scenario's, beside the serving defaults cell
    servers = [records.read(p, "serve_cell") for p in (results / "serving/vulkan").rglob("*_dev-Vulkan0*.json")]
    assert servers and all("--device" in s["serving"]["command"] for s in servers)
    rpc = last_rounds(pd.read_csv(results / "rpc_summary.csv"))
    [remote] = rpc[rpc["devices"] == "RPC0/RPC1"].itertuples()
    assert remote.status == "ok" and remote.software_device.startswith("software GPU") and remote.local_cell
    remotes = [cell for cell in (records.read(p, "rpc_cell") for p in (results / "rpc").rglob("*.json"))
               if cell["devices"] == "RPC0/RPC1"]
    assert remotes and all([w["device"] for w in c["rpc"]["workers"]] == ["Vulkan0", "CPU"] for c in remotes)
    findings = pd.read_csv(results / "findings.csv")
    mine = findings[findings["build"] == "vulkan"]
    assert len(mine) and mine["statement"].str.startswith("Software GPU (lavapipe): a functional check").all()


def test_run_anyway_on_lavapipe_records_what_really_happens(vulkan_build: dict[str, Any], tmp_path: Path) -> None:
    """lavapipe's memory is host memory: a 2.3 GiB K/V cache, more than the 2048 MiB the device reports, is
    predicted not to fit and, with ``memory.run_anyway``, allocates and serves (measured before this test was
    written). A K/V tensor over the largest the device takes (128 MiB, vulkaninfo) is predicted not to fit for
    that reason, and, started anyway, stops llama.cpp: the cell is recorded failed with the server's words."""
    many = {**TINY, "layers": 24, "context": 262144}  # small K/V tensors, a long context allowed
    config = {
        "builds": {"vulkan": {"cmake_options": VULKAN_OPTIONS, "visible_devices": "0", "software_device": True}},
        "models": {"long-llama": {"kind": "synthetic", "architecture": "llama", **many, "type": "Q8_0"}},
        "smoke": {"n_predict": 4},
        "benchmark": {"builds": [], "repetitions": 1, "rounds": 1, "exclude": [], "groups": {},
                      "disturbance": {"max_share": 0.25},
                      "defaults": {"n_prompt": 16, "n_gen": 4, "n_gpu_layers": "all"}},
        "memory": {"run_anyway": True},
        "quality": {"enabled": False},
        # 200192 cells x 24 layers x 512 B = 2346 MiB of K/V (49 MiB tensors); 600064 cells: 147 MiB tensors
        "serving": {"builds": ["vulkan"], "scenarios": {"long": {"ctx_size": [200000, 600000]}},
                    "defaults": {"prompt_tokens": 16, "max_tokens": 4, "requests": 2, "ctx_size": 512,
                                 "parallel": 1, "n_gpu_layers": "all"}},
        "rpc": {"topologies": {}},
    }
    write_config(tmp_path, config)
    snakemake(tmp_path, "--cores", "2", "--keep-going", timeout=1800)
    cells = {p.stem: records.read(p, "serve_cell") for p in (tmp_path / "results/serving/vulkan").rglob("*.json")}
    # each cell's last round (a disturbed round is measured again)
    beyond = max((c for name, c in cells.items() if "_c200000_" in name), key=lambda c: c["round"])
    fit = beyond["memory"]["fit"]
    assert not fit["fits"] and fit["started"] and fit["over"][0]["device"] == "Vulkan0"
    assert fit["over"][0]["predicted_mib"] > 2048 >= fit["limit_mib"]["Vulkan0"]
    assert beyond["serving"]["status"] == "ok", beyond["serving"]["error"]  # host memory: it allocated
    wide = max((c for name, c in cells.items() if "_c600000_" in name), key=lambda c: c["round"])
    [oversized] = wide["memory"]["fit"]["over"][-1:]
    assert oversized["device"] == "Vulkan0" and oversized["limit_mib"] == 128 and oversized["tensor_mib"] > 128
    assert wide["memory"]["fit"]["started"] and wide["serving"]["status"] == "failed"
    assert "exited with status -6 before it was ready" in wide["serving"]["error"]  # SIGABRT
    assert "cannot run the operation" in (tmp_path / wide["log"]).read_text()  # ggml-backend's words

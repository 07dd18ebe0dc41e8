"""A mid-2025 llama.cpp (the lab report's era) through the same rules: build, smoke run, one cell, serving cells.

llama-cpp-python 0.3.14 vendors a tree whose RPC server is ``rpc-server``, whose
one-shot tool is ``llama-cli``, which wants ``-DLLAMA_CURL=OFF`` without libcurl
headers, and whose ``-fa`` takes 0/1. A cold build takes ~9 minutes on 2 cores
(then a cache hit); it runs in CI, so a change that breaks older trees is caught.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest

from conftest import DEFAULT_CONFIG, snakemake, write_config
from llamabench.core import records

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake


def test_llama_cpp_python_0_3_14_builds_and_runs(tmp_path: Path) -> None:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["sources"] = {"main": {"kind": "pypi-sdist", "package": "llama-cpp-python", "version": "0.3.14"}}
    config["builds"] = {"cpu-rpc": DEFAULT_CONFIG["builds"]["cpu-rpc"]}
    config["smoke"]["n_predict"] = 8
    config["benchmark"] = {
        "builds": [],
        "groups": {},
        "exclude": [],
        "repetitions": 1,
        "rounds": 1,
        "defaults": {**DEFAULT_CONFIG["benchmark"]["defaults"], "n_prompt": 16, "n_gen": 4, "flash_attn": 0},
    }
    # Small serving cells: the mid-2025 llama-server through the same client, with continuous batching off
    # (-nocb: both trees), and with the server's prompt cache set (--cache-prompt: current trees only).
    config["serving"] = {"builds": [], "defaults": {"prompt_tokens": 16, "max_tokens": 4, "requests": 2,
                                                    "ctx_size": 1024, "flash_attn": 1},
                         "scenarios": {"s": {"concurrency": [1], "cont_batching": ["off"]},
                                       "pc": {"prompt_cache": ["on"]}}}
    write_config(tmp_path, config)
    snakemake(tmp_path, "--cores", "8", timeout=3600)

    build = records.read(tmp_path / "results/builds/cpu-rpc/manifest.json", "build")
    assert build["binaries"]["rpc_server"] == "rpc-server"
    assert build["binaries"]["completion"] == "llama-cli"
    smoke = records.read(tmp_path / "results/smoke/cpu-rpc/gemma3-270m.json", "smoke")
    assert smoke["text"].startswith(config["smoke"]["prompt"]) and smoke["timing_lines"]
    summary = pd.read_csv(tmp_path / "results/summary.csv")
    assert set(summary["status"]) == {"ok"}
    assert build["commit"].startswith(summary["build_commit"].iloc[0])
    serving = pd.read_csv(tmp_path / "results/serving_summary.csv").set_index("cell")
    assert (serving["status"] == "ok").sum() == 2, serving["error"].tolist()  # the defaults cell and -nocb
    assert "-nocb" in serving.filter(like="_cb-off", axis=0)["command_line"].iloc[0]
    cached = serving.filter(like="_pc-on", axis=0).iloc[0]
    assert cached["status"] == "skipped" and "no --cache-prompt" in cached["error"]
    # The default RPC topology through rpc-server v2: no -dev in this llama-bench, so all workers or none.
    rpc = pd.read_csv(tmp_path / "results/rpc_summary.csv").set_index("devices")
    assert rpc.loc["RPC0/RPC1", "status"] == "ok" and rpc.loc["none", "status"] == "ok", rpc["error"].tolist()
    assert "no -dev" in rpc.loc["RPC0", "error"]
    assert "RPC[127.0.0.1:" in rpc.loc["RPC0/RPC1", "workers"]

"""The synthetic model kind, for real: GGUFs of every supported architecture written with gguf-py, quantised
by each build's own llama-quantize, run by llama-bench, the one-shot tool and llama-server of the current
and the mid-2025 tree; a copy of the bundled Gemma with the same shape and per-tensor types; and a
synthetic model through the workflow."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from gguf import GGUFReader

from conftest import DEFAULT_CONFIG, RPC_OPTIONS, snakemake, write_config
from llamabench import source
from llamabench.prepare import builds as compiled
from llamabench.core import matrix, records, shapes
from llamabench.measure import completion, llama_bench, llama_server
from llamabench.prepare import synthetic
from llamabench.core.errors import UserError

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake

# Every dimension a multiple of 256, so that the K-quant types apply as on a real model.
SERVED = {"threads": 2, "batch_size": 512, "ubatch_size": 512, "n_gpu_layers": 99, "ctx_size": 512, "parallel": 1,
          "prompt_tokens": 16, "max_tokens": 4, "concurrency": 1, "requests": 2, "cache": "cold"}
TINY = {"layers": 2, "embedding": 256, "heads": 4, "kv_heads": 2, "ffn": 512, "vocab": 1024, "context": 2048}


@pytest.fixture(scope="module")
def builds(rpc_build: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The suite's current build and the mid-2025 one (a cache hit after tests/test_old_tree.py)."""
    old = source.fetch({"kind": "pypi-sdist", "package": "llama-cpp-python", "version": "0.3.14"})
    return {"current": rpc_build, "mid-2025": compiled.cached_build(old, "cpu-rpc", RPC_OPTIONS, threads=2)}


def as_record(entry: dict[str, Any], name: str) -> dict[str, Any]:
    """What synthetic.generate reads of a build record, from a cache entry."""
    return {**entry, "name": name, "bin_dir": str(Path(entry["cache_dir"]) / "bin")}


def tool(entry: dict[str, Any], role: str) -> Path:
    return Path(entry["cache_dir"]) / "bin" / entry["binaries"][role]


@pytest.mark.parametrize("architecture", shapes.ARCHITECTURES)
def test_every_architecture_runs_in_llama_bench_the_one_shot_tool_and_the_server_of_both_trees(
        builds: dict[str, dict[str, Any]], architecture: str, tmp_path: Path) -> None:
    for tree, entry in builds.items():
        cfg = {"kind": "synthetic", "architecture": architecture, **TINY, "type": "Q4_K_M",
               **({"layers": 6} if architecture == "gemma3" else {})}
        origin, path = synthetic.generate(cfg, as_record(entry, tree), tmp_path / "cache")
        assert origin["synthetic"] and GGUFReader(path).fields["general.architecture"].contents() == architecture
        params = {**matrix.baseline(DEFAULT_CONFIG["benchmark"]), "n_prompt": 8, "n_gen": 4, "repetitions": 1,
                  "flash_attn": "off"}
        run = llama_bench.measure(llama_bench.command(tool(entry, "bench"), path, params, 0), tmp_path / "bench.log",
                                  timeout=300)
        assert run["status"] == "ok", (tree, run.get("error"))
        one_shot = completion.command(tool(entry, "completion"), path, "Hello", 4, 42, 2)
        out = subprocess.run(one_shot, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, (tree, out.stderr[-2000:])
        served = llama_server.measure(tool(entry, "server"), path, {**SERVED, "flash_attn": 0},
                                      tmp_path / "serve.log", timeout=300)
        assert served["status"] == "ok", (tree, served["error"], served.get("server_log_tail"))


def test_a_gemma3_shape_without_a_global_attention_layer_is_refused() -> None:
    with pytest.raises(UserError, match="at least 6 layers"):
        shapes.shape_of({"architecture": "gemma3", **TINY})


def test_a_synthetic_copy_of_the_bundled_gemma_has_its_shape_and_every_tensors_type(
        builds: dict[str, dict[str, Any]], gemma: Path, tmp_path: Path) -> None:
    origin, path = synthetic.generate({"kind": "synthetic", "like": "gemma3-270m"},
                                      as_record(builds["current"], "cpu-rpc"), tmp_path / "cache", like=gemma)
    real, copy = GGUFReader(gemma), GGUFReader(path)
    assert [(t.name, list(t.shape), t.tensor_type.name) for t in copy.tensors] == \
        [(t.name, list(t.shape), t.tensor_type.name) for t in real.tensors]
    assert copy.fields["general.description"].contents().startswith("synthetic")
    assert len(copy.fields["tokenizer.ggml.tokens"].data) == 262144
    assert origin["type"] == "Q4_K_M" and origin["shape"]["layers"] == 18


def test_a_synthetic_model_through_the_workflow_is_marked_as_such(rpc_build: dict[str, Any], tmp_path: Path) -> None:
    config = {
        "builds": {"cpu-rpc": {"cmake_options": RPC_OPTIONS}},
        "models": {"tiny-llama": {"kind": "synthetic", "architecture": "llama", **TINY, "type": "Q8_0"}},
        "smoke": {"n_predict": 4},
        "benchmark": {"builds": [], "repetitions": 1, "rounds": 1, "groups": {}, "exclude": [],
                      "defaults": {"n_prompt": 16, "n_gen": 4}},
        "serving": {"builds": [], "scenarios": {}},
        "rpc": {"topologies": {}},
        # 4 chunks of 64: 124 scored tokens (llama-perplexity prints no summary under 100)
        "quality": {"ctx_size": 64, "chunks": 4, "cells": [{"cache_type_k": "q8_0", "cache_type_v": "q8_0"}]},
    }
    write_config(tmp_path, config)
    snakemake(tmp_path, "--cores", "2", timeout=1800)
    model = records.read(tmp_path / "results/models/tiny-llama/manifest.json", "model")
    assert model["model_kind"] == "synthetic" and model["origin"]["synthetic"] is True
    assert model["gguf"]["quantization"] == "MOSTLY_Q8_0" and model["gguf"]["layers"] == 2
    summary = pd.read_csv(tmp_path / "results/summary.csv")
    assert set(summary["status"]) <= {"ok", "disturbed"} and summary["synthetic"].all()  # a noisy VM may disturb
    assert "random weights" in (tmp_path / "results/report.html").read_text()
    # its KL divergence measures numerical fidelity, never quality
    table = records.read_table(tmp_path / "results/quality.csv", "quality_row")
    assert table["status"].eq("ok").all(), table[["cell", "status", "error"]].to_dict("records")
    [row] = table[~table["reference"]].to_dict("records")
    assert "numerical fidelity only" in row["label"] and row["kld_mean"] >= 0
    found = records.read_table(tmp_path / "results/findings.csv", "finding_row")
    [said] = found.loc[found["question"] == "quality_cost", "statement"]
    assert "numerical fidelity (a synthetic model: not quality)" in said

"""The git source kind and the hf model kind through a real Snakemake run.

The git repository is the default sdist's llama.cpp tree committed with a fixed
author and date, so its commit, and with it the build's cache key, is the same
on every run: the build is compiled once per machine (ccache makes even that
~2 minutes after the sdist build), then a cache hit. The model comes from a
local server speaking the Hugging Face protocol (tests/test_model.py) through
huggingface_hub, with a token that must reach neither a log nor a result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


import pytest

from conftest import GEMMA, RPC_OPTIONS, snakemake, write_config
from git_history import git
from llamabench.core import records
from test_model import HubHandler, hub  # noqa: F401 (hub is a fixture)

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake

def test_git_source_and_hf_model_through_snakemake(upstream: Path, git_build: dict[str, Any], hub: str,  # noqa: F811
                                                   tmp_path: Path) -> None:
    config = {
        "sources": {"upstream": {"kind": "git", "url": upstream.as_uri(), "ref": "b9999"}},
        "builds": {"cpu-rpc": {"cmake_options": RPC_OPTIONS}},
        "models": {"tiny": {"kind": "hf", "repo_id": "org/tiny-GGUF", "filename": "model.gguf",
                            "sha256": GEMMA["sha256"]}},
        "smoke": {"n_predict": 4},
        "benchmark": {"builds": [], "repetitions": 1, "rounds": 1, "defaults": {"n_prompt": 16, "n_gen": 4},
                      "groups": {}, "exclude": []},
        "serving": {"builds": [], "scenarios": {}},
        "rpc": {"topologies": {}},
    }
    write_config(tmp_path, config)
    out = snakemake(tmp_path, "--cores", "8", timeout=3600)
    assert "llamabench: download: org/tiny-GGUF/model.gguf: 253.1/253.1 MB" in out.stdout  # the job's progress

    results = tmp_path / "results"
    commit = git(upstream, "rev-parse", "HEAD")
    source = records.read(results / "sources/upstream/manifest.json", "source")
    assert source["source_kind"] == "git" and source["commit"] == commit
    build = records.read(results / "builds/cpu-rpc/manifest.json", "build")
    assert build["cache_hit"] and build["cache_key"] == git_build["cache_key"]  # the fixture's build
    assert build["commit"] == commit and f"-DLLAMA_BUILD_COMMIT={commit}" in build["options"]
    model = records.read(results / "models/tiny/manifest.json", "model")
    assert model["model_kind"] == "hf" and model["origin"]["endpoint"] == hub
    [cell_path] = (results / "cells/cpu-rpc/tiny").glob("*.json")
    cell = records.read(cell_path, "bench_cell")
    assert cell["llama_bench"]["status"] == "ok"
    assert all(commit.startswith(r["build_commit"]) for r in cell["llama_bench"]["records"])
    assert "Bearer hf_secret_test_token" in HubHandler.seen_auth
    for path in [*results.rglob("*"), *(tmp_path / ".snakemake").rglob("*")]:
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert b"hf_secret_test_token" not in path.read_bytes(), path

"""The git source kind and the hf model kind through a real Snakemake run.

The git repository is the default sdist's llama.cpp tree committed with a fixed
author and date, so its commit, and with it the build's cache key, is the same
on every run: the build is compiled once per machine (ccache makes even that
~2 minutes after the sdist build), then a cache hit. The model comes from a
local server speaking the Hugging Face protocol (tests/test_model.py) through
huggingface_hub, with a token that must reach neither a log nor a result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import GEMMA, RPC_OPTIONS, snakemake, write_config
from llamabench.core import records
from test_model import HubHandler, hub  # noqa: F401 (hub is a fixture)

FIXED_IDENTITY = {
    "GIT_AUTHOR_NAME": "llamabench tests", "GIT_AUTHOR_EMAIL": "tests@llamabench.invalid",
    "GIT_COMMITTER_NAME": "llamabench tests", "GIT_COMMITTER_EMAIL": "tests@llamabench.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **FIXED_IDENTITY}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


@pytest.fixture(scope="module")
def upstream(source_manifest: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("upstream") / "llama.cpp"
    shutil.copytree(source_manifest["source_dir"], repo)
    git(repo, "init", "-q", "-b", "master")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "llama.cpp tree of the llama-cpp-python sdist")
    git(repo, "tag", "b9999")
    return repo


def test_git_source_and_hf_model_through_snakemake(upstream: Path, hub: str, tmp_path: Path) -> None:  # noqa: F811
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
    snakemake(tmp_path, "--cores", "8", timeout=3600)

    results = tmp_path / "results"
    commit = git(upstream, "rev-parse", "HEAD")
    source = records.read(results / "sources/upstream/manifest.json", "source")
    assert source["source_kind"] == "git" and source["commit"] == commit
    build = records.read(results / "builds/cpu-rpc/manifest.json", "build")
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

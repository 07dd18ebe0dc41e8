"""The smoke run with the real one-shot tool: an answer with timings, or a recorded failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llamabench.measure import completion as smoke

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake


def test_smoke_run_answers_with_timings(rpc_build: dict[str, Any], bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    exe = bin_dir / rpc_build["binaries"]["completion"]
    cmd = smoke.command(exe, gemma, "The capital of France is", n_predict=8, seed=42, threads=2)
    assert "-no-cnv" in cmd  # this tree's tool would otherwise wait for chat input
    result = smoke.generate(cmd, tmp_path / "smoke.log")
    assert result["status"] == "ok", result["error"]
    assert result["text"].startswith("The capital of France is") and len(result["text"]) > 30
    assert result["tokens_per_second"]["generation"] > 0


def test_smoke_failure_is_recorded_not_raised(rpc_build: dict[str, Any], bin_dir: Path, tmp_path: Path) -> None:
    exe = bin_dir / rpc_build["binaries"]["completion"]
    cmd = smoke.command(exe, tmp_path / "missing.gguf", "Hi", n_predict=4, seed=1, threads=1)
    result = smoke.generate(cmd, tmp_path / "smoke.log")
    assert result["status"] == "failed"
    assert "failed with exit status" in result["error"]
    log = (tmp_path / "smoke.log").read_text()  # the command, the tool's own words where it wrote any, the outcome
    assert "missing.gguf" in log and result["error"] in log


def test_smoke_timeout_is_recorded(rpc_build: dict[str, Any], bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    exe = bin_dir / rpc_build["binaries"]["completion"]
    cmd = smoke.command(exe, gemma, "Once upon a time", n_predict=4096, seed=1, threads=1)
    result = smoke.generate(cmd, tmp_path / "smoke.log", timeout=2)
    assert result["status"] == "failed" and "did not finish within 2 s" in result["error"]

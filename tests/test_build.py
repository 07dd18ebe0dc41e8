"""Builds: the real cached build, binary-name detection, and the one-sentence toolchain errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import RPC_OPTIONS
from llamabench.prepare import builds
from llamabench.core import options
from llamabench.prepare import toolchain
from llamabench.core.errors import UserError


def test_real_build_has_the_workflow_binaries(rpc_build: dict[str, Any], bin_dir: Path) -> None:
    assert rpc_build["binaries"]["bench"] == "llama-bench"
    assert rpc_build["binaries"]["completion"] == "llama-completion"  # llama-cli is chat-only in this tree
    assert rpc_build["binaries"]["rpc_server"] == "ggml-rpc-server"
    assert rpc_build["binaries"]["server"] == "llama-server"
    for name in rpc_build["binaries"].values():
        assert os.access(bin_dir / name, os.X_OK)


def test_build_records_the_commit_in_the_binary(rpc_build: dict[str, Any], bin_dir: Path,
                                                 source_manifest: dict[str, Any]) -> None:
    """An sdist tree has no git metadata; without -DLLAMA_BUILD_COMMIT the binary would say 'unknown'."""
    out = subprocess.run([bin_dir / "llama-bench", "--version"], capture_output=True, text=True)
    assert source_manifest["commit"] in out.stdout + out.stderr
    assert f"-DLLAMA_BUILD_COMMIT={source_manifest['commit']}" in rpc_build["options"]


def test_second_build_is_a_cache_hit(rpc_build: dict[str, Any], source_manifest: dict[str, Any]) -> None:
    start = time.monotonic()
    again = builds.cached_build(source_manifest, "cpu-rpc", RPC_OPTIONS, threads=2)
    assert again["cache_hit"] is True
    assert again["cache_dir"] == rpc_build["cache_dir"]
    assert time.monotonic() - start < 30  # a lookup, not a 9-minute compile


def test_cache_key_changes_with_options_and_commit(source_manifest: dict[str, Any]) -> None:
    gcc, clang = {"cxx": "g++ 12", "cc": "gcc 12"}, {"cxx": "clang++ 17", "cc": "clang 17"}
    base = builds.cache_key(source_manifest, ["-DGGML_RPC=ON"], gcc)
    assert base != builds.cache_key(source_manifest, ["-DGGML_RPC=OFF"], gcc)
    assert base != builds.cache_key(source_manifest, ["-DGGML_RPC=ON"], clang)
    assert base != builds.cache_key({**source_manifest, "commit": "0" * 40}, ["-DGGML_RPC=ON"], gcc)
    # Two sdists whose commit could not be read still differ by their archive.
    no_commit = {**source_manifest, "commit": None}
    assert builds.cache_key(no_commit, [], gcc) != builds.cache_key({**no_commit, "archive_sha256": "ab"}, [], gcc)
    assert base["cpu"] is not None
    assert builds.cache_key(source_manifest, ["-DGGML_NATIVE=OFF"], gcc)["cpu"] is None
    assert builds.cache_key(source_manifest, ["-DGGML_NATIVE=OFF", "-DGGML_NATIVE=ON"], gcc)["cpu"] is not None


def test_list_devices_reads_the_real_binary(rpc_build: dict[str, Any], bin_dir: Path) -> None:
    devices = builds.list_devices(bin_dir, rpc_build["binaries"])
    assert devices["tool"] == "llama-bench"
    assert devices["output"].startswith("Available devices")


def test_parse_devices_from_a_cuda_listing() -> None:
    text = ("Available devices:\n  CUDA0: NVIDIA H100 80GB HBM3 (81079 MiB, 80520 MiB free)\n"
            "  RPC0: 127.0.0.1:50052 (2048 MiB, 2048 MiB free)\n")
    devices = builds.parse_devices(text)
    assert [d["name"] for d in devices] == ["CUDA0", "RPC0"]
    assert devices[0]["total_mib"] == "81079"


@pytest.mark.parametrize(
    ("defined", "expected"),
    [
        ({"llama-bench", "llama-completion", "llama-cli", "ggml-rpc-server", "llama-server"},
         {"completion": "llama-completion", "rpc_server": "ggml-rpc-server"}),
        ({"llama-bench", "llama-cli", "rpc-server", "llama-server"},  # a mid-2025 tree
         {"completion": "llama-cli", "rpc_server": "rpc-server"}),
        ({"llama-bench", "llama-cli"}, {"completion": "llama-cli"}),  # no RPC, no server
    ],
)
def test_binary_names_are_detected(defined: set[str], expected: dict[str, str]) -> None:
    chosen = builds.pick_targets(defined)
    assert chosen["bench"] == "llama-bench"
    assert {k: v for k, v in chosen.items() if k in expected} == expected
    assert set(chosen) - {"bench", "server"} == set(expected)


def test_a_tree_without_llama_bench_is_one_sentence() -> None:
    with pytest.raises(UserError, match="llama-bench"):
        builds.pick_targets({"llama-cli"})


@pytest.mark.parametrize(
    ("cmake_options", "enabled"),
    [(["-DGGML_CUDA=ON"], True), (["-DGGML_CUDA:BOOL=1"], True), (["-DGGML_CUDA=ON", "-DGGML_CUDA=OFF"], False),
     (["-DGGML_CUDA_FA_ALL_QUANTS=ON"], False), ([], False)],
)
def test_option_enabled(cmake_options: list[str], enabled: bool) -> None:
    assert options.enabled(cmake_options, "GGML_CUDA") is enabled


def path_with_only(tmp_path: Path, *programs: str) -> str:
    """A PATH holding just these programs (symlinked), to simulate a machine that lacks the others."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for program in programs:
        (bin_dir / program).symlink_to(shutil.which(program))
    return str(bin_dir)


def test_missing_cmake_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", path_with_only(tmp_path, "ninja", "g++", "gcc"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-venv" / "python"))  # no pip cmake beside it
    with pytest.raises(UserError, match=r"^cmake was not found on PATH: install it with 'pip install cmake'"):
        toolchain.check([], "cpu")


def test_missing_compiler_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", path_with_only(tmp_path, "cmake", "ninja"))
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(UserError, match=r"^no C\+\+ compiler was found"):
        toolchain.check([], "cpu")


def test_cuda_without_nvcc_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", path_with_only(tmp_path, "cmake", "ninja", "g++", "gcc", "cc", "c++"))
    monkeypatch.delenv("CUDACXX", raising=False)
    with pytest.raises(UserError, match=r"^build 'cuda' asks for CUDA \(-DGGML_CUDA=ON\) but nvcc was not found"):
        toolchain.check(["-DGGML_CUDA=ON"], "cuda")

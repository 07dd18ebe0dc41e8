"""Configure and build llama.cpp binaries through a shared cache: what the build rule and a study's probe builds share.

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
from pathlib import Path
from typing import Any

from llamabench.core import backends, code_version, files
from llamabench.core import options as cmake
from llamabench.core.errors import UserError
from llamabench.measure import console, machine_lock, processes
from llamabench.prepare import toolchain, vulkan

log = logging.getLogger(__name__)

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
    # llama.cpp's own memory projection (late-2025 trees on): a second predictor beside derive/memory.py.
    "fit_params": ["llama-fit-params"],
    # what a setting costs in output quality: KL divergence against a reference's logits (quality cells)
    "perplexity": ["llama-perplexity"],
}
REQUIRED_ROLES = {"bench", "completion"}


class CompileError(UserError):
    """The tree did not configure or compile: a property of the commit (a probe skips it), not of this machine."""


def cuda_architectures(options: list[str], record: dict[str, Any] | None, build_name: str) -> list[str]:
    """``options`` with ``CMAKE_CUDA_ARCHITECTURES`` set: as given, else the detected GPUs' compute capabilities,
    so that nothing is compiled for every architecture."""
    if not cmake.enabled(options, "GGML_CUDA") or cmake.value(options, "CMAKE_CUDA_ARCHITECTURES"):
        return options
    caps = sorted({gpu["compute_cap"].replace(".", "") for gpu in (record or {}).get("gpus", []) if gpu["compute_cap"]})
    if not caps:
        raise UserError(
            f"build '{build_name}' has no -DCMAKE_CUDA_ARCHITECTURES and no GPU was detected to take it from: "
            "set it (e.g. 86 for an RTX 3060, 90 for an H100)")
    return [*options, f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(caps)}"]


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


def cache_key(source: dict[str, Any], options: list[str], versions: dict[str, str]) -> dict[str, Any]:
    """Everything that changes the machine code; ``versions`` holds the compilers' version lines."""
    native = cmake.value(options, "GGML_NATIVE")
    return {
        # the build rule's declared version (workflow/versions.yaml): bumped when the recipe changes, it rebuilds
        "recipe": code_version.declared_version("build"),
        "commit": source.get("commit"),
        "archive_sha256": source.get("archive_sha256"),
        "dirty": source.get("dirty"),
        "tree_fingerprint": source.get("tree_fingerprint"),
        "options": options,
        "toolchain": versions,
        "flags": {var: os.environ.get(var) for var in ("CFLAGS", "CXXFLAGS", "LDFLAGS", "CUDAFLAGS")},
        # A GGML_NATIVE build (the default) is tuned to this CPU, and a CUDA build
        # without CMAKE_CUDA_ARCHITECTURES to the GPUs present now.
        "cpu": cpu_signature() if cmake.is_true(native or "ON") else None,
        "gpus": gpu_signature() if cmake.enabled(options, "GGML_CUDA")
        and cmake.value(options, "CMAKE_CUDA_ARCHITECTURES") is None else None,
    }


def gpu_signature() -> str | None:
    """Names and compute capabilities of the visible NVIDIA GPUs, or None where nvidia-smi is absent."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def detect_targets(ninja: str, build_dir: Path, roles: frozenset[str] | None = None) -> dict[str, str]:
    """Map each role (of ``roles``; every one when None) to the first of its candidate target names that this
    tree defines."""
    listing = processes.output([ninja, "-C", build_dir, "-t", "targets", "all"])
    defined = {line.split(":", 1)[0].strip() for line in listing.splitlines()}
    return pick_targets(defined, roles)


def pick_targets(defined: set[str], roles: frozenset[str] | None = None) -> dict[str, str]:
    chosen = {}
    for role, names in ROLES.items():
        if roles is not None and role not in roles:
            continue
        for name in names:
            if name in defined:
                chosen[role] = name
                break
    missing = sorted((REQUIRED_ROLES if roles is None else roles) - chosen.keys())
    if missing:
        wanted = ", ".join("/".join(ROLES[m]) for m in missing)
        raise UserError(f"this llama.cpp tree defines none of the targets {wanted}")
    return chosen


def cached_build(
    source: dict[str, Any],
    build_name: str,
    options: list[str],
    threads: int,
    cache: Path | None = None,
    roles: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Return the cache entry (bin dir and build facts) for this source and options, building on a miss.

    ``roles``: only the binaries these roles need (a bisect probe builds llama-bench alone, as upstream's
    compare-commits.sh does); a full entry of the same source and options serves them too, so a probe of a
    commit that a configured build already compiled is a cache hit."""
    tools = toolchain.check(options, build_name)
    cache = cache or files.cache_root()
    versions = {name: toolchain.tool_version(tools[name], "release") for name in ("cxx", "cc", "nvcc") if name in tools}
    compiler = versions["cxx"]
    gpu_headers = None
    if cmake.enabled(options, "GGML_VULKAN") and not cmake.value(options, "Vulkan_INCLUDE_DIR"):
        found = vulkan.check(build_name, Path(source["source_dir"]), cache)
        versions["glslc"] = toolchain.tool_version(found["glslc"])
        options, gpu_headers = [*options, *found["cmake_options"]], found["headers"]
    options_all = full_options(source, options)
    key_fields = cache_key(source, options_all, versions)
    keys = [files.sha256_text(repr(sorted(key_fields.items())))[:20]]
    if roles is not None:
        key_fields = {**key_fields, "roles": sorted(roles)}
        keys.append(files.sha256_text(repr(sorted(key_fields.items())))[:20])
    for key in keys:
        if (cache / "builds" / key / "entry.json").exists():
            return _hit(cache / "builds" / key)
    key = keys[-1]
    entry = cache / "builds" / key
    with files.file_lock(cache / "builds" / f".{key}.lock"):
        if (entry / "entry.json").exists():
            return _hit(entry)
        log.info("build cache miss: %s", entry)
        # --cores 8 on a 2-core machine must not mean 8 parallel compilers (CUDA kernels need GBs each).
        jobs = max(1, min(threads, os.cpu_count() or 1))
        with machine_lock.held(f"build '{build_name}'", shared=True):  # never beside a measurement
            info = compile_tree(source, build_name, options_all, tools, jobs, entry, roles)
        info.update(cache_key=key, key_fields=key_fields, compiler=compiler, vulkan_headers=gpu_headers)
        files.write_json(entry / "entry.json", info)
    return {**info, "cache_dir": str(entry), "cache_hit": False}


def added_roles(build: dict[str, Any], source: dict[str, Any], roles: frozenset[str], threads: int,
                cache: Path | None = None) -> dict[str, Path]:
    """Binaries of ``roles`` that a cached build lacks (one compiled before the role existed: llama-perplexity
    came with quality cells), compiled once beside it with the same options, keyed by its cache key and the
    roles: the build and its record stay as they are, so nothing measured with it reruns. Role -> its binary."""
    cache = cache or files.cache_root()
    key = files.sha256_text(repr([build["cache_key"], sorted(roles)]))[:20]
    entry = cache / "builds" / key
    with files.file_lock(cache / "builds" / f".{key}.lock"):
        if not (entry / "entry.json").exists():
            log.info("build %s lacks %s: compiling it beside (%s)", build["name"], ", ".join(sorted(roles)), entry)
            tools = toolchain.check(build["options"], build["name"])
            jobs = max(1, min(threads, os.cpu_count() or 1))
            with machine_lock.held(f"build '{build['name']}' ({', '.join(sorted(roles))})", shared=True):
                info = compile_tree(source, build["name"], list(build["options"]), tools, jobs, entry, roles)
            files.write_json(entry / "entry.json", {**info, "cache_key": key, "added_to": build["cache_key"]})
    binaries = files.read_json(entry / "entry.json")["binaries"]
    return {role: entry / "bin" / binaries[role] for role in roles}


def _hit(entry: Path) -> dict[str, Any]:
    log.info("build cache hit: %s", entry)
    return {**files.read_json(entry / "entry.json"), "cache_dir": str(entry), "cache_hit": True}


def compile_tree(
    source: dict[str, Any],
    build_name: str,
    options: list[str],
    tools: dict[str, str],
    threads: int,
    entry: Path,
    roles: frozenset[str] | None = None,
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
    if ccache := toolchain.find_ccache():
        configure += [f"-DCMAKE_C_COMPILER_LAUNCHER={ccache}", f"-DCMAKE_CXX_COMPILER_LAUNCHER={ccache}"]
    # This build's own ccache statistics (builds may overlap): its progress lines count its hits.
    stats = work / "ccache-stats.log"
    env = {**os.environ, "CCACHE_BASEDIR": str(work), "CCACHE_NOHASHDIR": "1", "CCACHE_STATSLOG": str(stats)}
    try:
        processes.run_logged(configure, env=env, what=f"cmake configure of build '{build_name}'")
        targets = detect_targets(tools["ninja"], build_dir, roles)
        processes.run_logged([tools["cmake"], "--build", build_dir, "--parallel", str(threads), "--target",
                             *targets.values()], env=env, what=f"cmake build of '{build_name}'",
                             progress=(f"build '{build_name}'", lambda text: console.build_line(text, stats)))
    except UserError as err:
        files.remove(work)
        raise CompileError(str(err)) from None
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
        "cmake": toolchain.tool_version(tools["cmake"]),
        "ccache": bool(ccache),
        "nvcc": toolchain.tool_version(tools["nvcc"], "release") if "nvcc" in tools else None,
        "parallel_jobs": threads,
    }




def list_devices(bin_dir: Path, binaries: dict[str, str], environment: dict[str, str] | None = None,
                 ) -> dict[str, Any]:
    """``--list-devices`` output of the build, from llama-bench or (older trees) the completion tool, run with the
    build's ``environment`` (the devices it is to see).

    An unknown flag makes some llama.cpp tools print usage and exit 0, so the
    output is checked for the device list header rather than trusting the exit code.
    """
    for role in ("bench", "completion"):
        if role not in binaries:  # a probe builds llama-bench alone
            continue
        exe = bin_dir / binaries[role]
        try:
            out = processes.run([exe, "--list-devices"], timeout=120, env={**os.environ, **(environment or {})})
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


def installed(entry: dict[str, Any], bin_dir: Path, name: str, source_name: str, requested_options: list[str],
              source: dict[str, Any], environment: dict[str, str] | None = None, software_opt_in: bool = False,
              ) -> dict[str, Any]:
    """Put the cached binaries at ``bin_dir`` and return the build record's fields: what a configured build's
    record and a probe's ``built`` hold alike. ``environment``: the variables its processes run with (the devices
    its backend sees); ``software_opt_in``: the config lets it measure on a software GPU."""
    install(entry, bin_dir)
    devices = list_devices(bin_dir, entry["binaries"], environment)
    backend = backends.of(entry["options"])
    return {
        "backend": backend.name if backend else None,
        "environment": dict(environment or {}),
        "software_device": backends.software_label(backends.gpu_devices(backend, devices["devices"])),
        "software_opt_in": software_opt_in,
        "vulkan_headers": entry.get("vulkan_headers"),
        "name": name,
        "source": source_name,
        "requested_options": list(requested_options),
        "commit": source["commit"],
        "build_number": source["build_number"],
        "source_kind": source["source_kind"],
        "bin_dir": str(bin_dir),
        "devices": devices,
        "flash_attn_kv_pairs": cmake.flash_attn_kv_pairs(entry["options"]),
        **{key: entry[key] for key in ("options", "compiler", "cmake", "nvcc", "ccache", "cache_key", "cache_dir",
                                       "cache_hit", "binaries")},
    }


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

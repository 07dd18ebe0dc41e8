"""What a Vulkan build needs on this machine (glslc, the loader, SPIRV-Headers, Vulkan headers new enough for the
tree), named in one sentence when missing; headers that are too old are replaced by newer ones fetched into the
build cache, as the workflow provides cmake and ninja, and the build record says so.

Debian 12's Vulkan headers (1.3.239) lack ``vk::LayerSettingEXT`` (VK_EXT_layer_settings, headers 1.3.272), which
llama.cpp's Vulkan backend has used since 2025; Debian 13's ``libvulkan-dev`` (1.4.309) has it. Where apt-get is
at hand its ``download`` takes that package from the newer suite into a directory of the cache (``dpkg -x``):
nothing is installed system-wide and the system's own package lists are left alone.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from llamabench.core import files
from llamabench.core.errors import UserError

log = logging.getLogger(__name__)

INSTALL = "on Debian or Ubuntu: apt-get install glslc spirv-headers libvulkan-dev (and mesa-vulkan-drivers for a " \
          "software device)"
# Where CMake's FindVulkan and find_package(SPIRV-Headers) look on a Linux system, and under $VULKAN_SDK.
PREFIXES = ("/usr", "/usr/local")
# The newer suite whose libvulkan-dev is taken when the system's headers are too old, and the symbol that tells.
NEWER_SUITE = "trixie"
NEEDED = "LayerSettingEXT"  # vk::LayerSettingEXT: VK_EXT_layer_settings, in the headers since 1.3.272


def prefixes() -> list[Path]:
    sdk = os.environ.get("VULKAN_SDK")
    return [Path(p) for p in ((sdk,) if sdk else ()) + PREFIXES]


def check(build_name: str, source_dir: Path, cache: Path) -> dict[str, Any]:
    """glslc, the loader, SPIRV-Headers and usable headers, or one sentence naming every missing part.

    Returns the tools (``glslc``), the CMake options that point at provided headers, and what the record says of
    the headers (their version, and where they came from when the system's were too old)."""
    glslc, headers = tools(build_name)
    include = Path(headers).parent.parent
    system = {"include_dir": str(include), "version": header_version(include), "provided": None}
    if not needs(source_dir) or declares(include):
        return {"glslc": glslc, "cmake_options": [], "headers": system}
    provided = newer_headers(build_name, cache, system["version"])
    return {"glslc": glslc, "cmake_options": [f"-DVulkan_INCLUDE_DIR={provided['include_dir']}"],
            "headers": provided}


def tools(build_name: str) -> tuple[str, str]:
    """glslc and the Vulkan C++ header, with the loader and SPIRV-Headers checked too, or one sentence naming
    every missing part (the preflight asks before any job, the build again on its host)."""
    glslc = shutil.which("glslc") or found(["bin/glslc"])
    loader = found(["lib/libvulkan.so", "lib/*/libvulkan.so", "lib64/libvulkan.so"])
    spirv = found(["share/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake",
                   "lib/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake",
                   "lib/*/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake",
                   "share/SPIRV-Headers/cmake/SPIRV-HeadersConfig.cmake"])
    headers = found(["include/vulkan/vulkan.hpp"])
    parts = (("glslc (the shader compiler)", glslc), ("the Vulkan loader's libvulkan.so", loader),
             ("the SPIRV-Headers CMake package", spirv), ("the Vulkan C++ headers (vulkan/vulkan.hpp)", headers))
    missing = [what for what, ok in parts if not ok]
    if missing:
        raise UserError(f"build '{build_name}' asks for Vulkan (-DGGML_VULKAN=ON) but this machine has no "
                        f"{' and no '.join(missing)}: {INSTALL}")
    return glslc, headers


def found(patterns: list[str]) -> str | None:
    """The first file matching one of ``patterns`` under the Vulkan SDK or the system prefixes."""
    for prefix in prefixes():
        for pattern in patterns:
            if hits := sorted(glob.glob(str(prefix / pattern))):
                return hits[0]
    return None


def needs(source_dir: Path) -> bool:
    """Whether this tree's Vulkan backend uses the symbol that old headers lack."""
    backend = Path(source_dir) / "ggml/src/ggml-vulkan/ggml-vulkan.cpp"
    return backend.is_file() and f"vk::{NEEDED}" in backend.read_text(errors="replace")


def declares(include: Path) -> bool:
    """Whether the headers under ``include`` declare it (vulkan.hpp spreads its structs over vulkan_structs.hpp)."""
    return any(re.search(rf"\bstruct {NEEDED}\b", p.read_text(errors="replace"))
               for p in (include / "vulkan").glob("vulkan*.hpp"))


def header_version(include: Path) -> str | None:
    """``1.3.239`` from vulkan_core.h's VK_HEADER_VERSION_COMPLETE and VK_HEADER_VERSION."""
    core = include / "vulkan" / "vulkan_core.h"
    if not core.is_file():
        return None
    text = core.read_text(errors="replace")
    complete = re.search(r"#define VK_HEADER_VERSION_COMPLETE VK_MAKE_API_VERSION\(\d+, (\d+), (\d+), ", text)
    patch = re.search(r"#define VK_HEADER_VERSION (\d+)", text)
    return f"{complete.group(1)}.{complete.group(2)}.{patch.group(1)}" if complete and patch else None


def newer_headers(build_name: str, cache: Path, system_version: str | None) -> dict[str, Any]:
    """Debian's ``libvulkan-dev`` of the newer suite, unpacked once into the cache and shared by every build."""
    target = cache / "toolchain" / f"vulkan-headers-{NEWER_SUITE}"
    with files.file_lock(cache / "toolchain" / f".vulkan-headers-{NEWER_SUITE}.lock"):
        if not (target / "provided.json").is_file():
            fetch_headers(build_name, target, system_version)
    return files.read_json(target / "provided.json")


def fetch_headers(build_name: str, target: Path, system_version: str | None) -> None:
    too_old = (f"build '{build_name}': the Vulkan headers here ({system_version or 'unknown version'}) lack "
               f"vk::{NEEDED}, which this llama.cpp tree uses (headers 1.3.272 or newer)")
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        raise UserError(f"{too_old}, and without apt-get newer ones cannot be fetched: install the Vulkan SDK "
                        "(https://vulkan.lunarg.com) and set $VULKAN_SDK")
    log.info("%s: fetching libvulkan-dev from Debian %s into %s", too_old, NEWER_SUITE, target)
    work = files.make_temp_dir(target.parent, target.name)
    try:
        apt = apt_options(work)
        (work / "lists" / "partial").mkdir(parents=True)
        (work / "archives" / "partial").mkdir(parents=True)
        (work / "sources.list").write_text(f"deb {mirror()} {NEWER_SUITE} main\n")
        for step in (["update"], ["download", f"libvulkan-dev/{NEWER_SUITE}"]):
            run = subprocess.run(["apt-get", *apt, *step], cwd=work, capture_output=True, text=True, timeout=600)
            if run.returncode != 0:
                raise UserError(f"{too_old}, and apt-get {step[0]} of Debian {NEWER_SUITE}'s libvulkan-dev failed "
                                f"({(run.stderr or run.stdout).strip()[-300:]}): install Vulkan headers 1.3.272 or "
                                "newer (the Vulkan SDK, or a newer libvulkan-dev)")
        [deb] = work.glob("libvulkan-dev_*.deb")
        subprocess.run(["dpkg", "-x", deb, work / "root"], check=True, capture_output=True, timeout=300)
        include = target / "root" / "usr" / "include"
        version = header_version(work / "root" / "usr" / "include")
        files.write_json(work / "provided.json", {
            "include_dir": str(include), "version": version, "package": deb.name,
            "provided": f"Debian {NEWER_SUITE}'s {deb.name} (the system's headers {system_version} lack "
                        f"vk::{NEEDED})"})
        for scratch in ("lists", "archives", "sources.list", deb.name):
            files.remove(work / scratch)
        files.remove(target)
        work.rename(target)
    finally:
        files.remove(work)


def apt_options(work: Path) -> list[str]:
    """apt-get on its own sources list, lists and archive directory: the system's are neither read nor changed."""
    return ["-q", "-o", f"Dir::Etc::SourceList={work / 'sources.list'}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={work / 'lists'}", "-o", f"Dir::Cache::Archives={work / 'archives'}",
            "-o", f"Dir::Cache={work}", "-o", "APT::Sandbox::User=root"]


def mirror() -> str:
    """The Debian mirror the system's own sources name (deb.debian.org where none is found)."""
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        text = path.read_text(errors="replace") if path.is_file() else ""
        if match := re.search(r"(?:URIs:|^deb)\s+(https?://\S+/debian)/?\s", text, flags=re.MULTILINE):
            return match.group(1)
    return "http://deb.debian.org/debian"

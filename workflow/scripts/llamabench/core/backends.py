"""The registry of llama.cpp's GPU backends: how a build asks for one, what its devices are called, which variable
chooses the devices a process sees, and what each can split.

Everything that used to assume NVIDIA asks here: whether a build's runs are GPU runs, which devices of the build's
own ``--list-devices`` are its GPUs (their free memory feeds the fit decision), and which devices are software
renderers (Mesa's lavapipe, SwiftShader) whose numbers are a functional check, never GPU performance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llamabench.core import axes, options


@dataclass(frozen=True)
class Backend:
    name: str  # the project's spelling: cuda, vulkan, hip, sycl, metal, musa
    cmake_flag: str  # -D<flag>=ON asks for it
    device_prefix: str  # llama.cpp's device names: <prefix><index> (Metal's is the bare prefix)
    visible_env: str | None  # the variable that picks the devices a process sees
    split_row: bool = False  # -sm row needs split buffers, which only some backends have
    nvml: bool = False  # NVIDIA telemetry (power, energy, clocks, VRAM) is read through NVML
    # the tool that says the largest tensor each device takes (measure/gpus.py reads it), where the backend
    # keeps a larger weight on the CPU: Vulkan's maxStorageBufferRange and maxBufferSize
    tensor_limits: str | None = None


BACKENDS = {b.name: b for b in (
    Backend("cuda", "GGML_CUDA", "CUDA", "CUDA_VISIBLE_DEVICES", nvml=True),
    Backend("vulkan", "GGML_VULKAN", "Vulkan", "GGML_VK_VISIBLE_DEVICES", tensor_limits="vulkaninfo"),
    Backend("hip", "GGML_HIP", "ROCm", "HIP_VISIBLE_DEVICES"),
    Backend("sycl", "GGML_SYCL", "SYCL", "ONEAPI_DEVICE_SELECTOR", split_row=True),
    Backend("metal", "GGML_METAL", "Metal", None),
    Backend("musa", "GGML_MUSA", "MUSA", "MUSA_VISIBLE_DEVICES"),
)}

# Software renderers that present themselves as GPUs: Mesa's lavapipe (llvmpipe), Google's SwiftShader, Mesa's
# softpipe. Their speed is the CPU's, through a graphics API.
SOFTWARE_DEVICE = re.compile(r"llvmpipe|lavapipe|swiftshader|softpipe", re.IGNORECASE)

SOFTWARE_LABEL = "software GPU ({renderer}): a functional check, not GPU performance"


def of(cmake_options: Iterable[str]) -> Backend | None:
    """The GPU backend a build's CMake options ask for, or None for a CPU build (with or without RPC)."""
    chosen = [b for b in BACKENDS.values() if options.enabled(list(cmake_options), b.cmake_flag)]
    return chosen[0] if chosen else None


def _own(backend: Backend) -> re.Pattern[str]:
    """The names a backend gives its devices: ``Vulkan0``, ``CUDA1``, ``Metal``."""
    return re.compile(rf"{re.escape(backend.device_prefix)}\d*")


def gpu_devices(backend: Backend | None, devices: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The devices of a build's ``--list-devices`` that belong to its backend (RPC and CPU devices are not)."""
    if backend is None:
        return []
    return [dict(d) for d in devices if _own(backend).fullmatch(d["name"])]


def named_devices(params: Mapping[str, Any], kind: str) -> list[str] | None:
    """The devices a cell's ``device`` names, in its order: None where unset (every GPU), [] for none."""
    named = axes.value(params, "device", kind)
    return None if named is None else [n for n in str(named).split("/") if n != "none"]


def software_renderer(device: Mapping[str, Any]) -> str | None:
    """The renderer's name where a device is a software one (``llvmpipe``), else None."""
    match = SOFTWARE_DEVICE.search(str(device.get("description") or ""))
    return match.group(0).lower() if match else None


def software_label(devices: Iterable[Mapping[str, Any]]) -> str | None:
    """The sentence every record, table and finding of a software device carries, or None for hardware."""
    renderers = sorted({r for d in devices if (r := software_renderer(d))})
    if not renderers:
        return None
    return SOFTWARE_LABEL.format(renderer=", ".join("lavapipe" if r == "llvmpipe" else r for r in renderers))


def environment(backend: Backend | None, visible_devices: str | None) -> dict[str, str]:
    """The variables a build's processes run with: its backend's device choice, where the build names one."""
    if backend is None or visible_devices is None or backend.visible_env is None:
        return {}
    return {backend.visible_env: visible_devices}


def unusable(build: Mapping[str, Any], params: Mapping[str, Any] | None = None, kind: str = axes.BENCHMARK,
             ) -> str | None:
    """Why a GPU build's cells are not measured here (from the build's own ``--list-devices``), or None: no device
    of its backend (its binary would run on the CPU, and those numbers are not GPU numbers), a software device
    the config did not opt in to, or (``params``: a cell's) a ``device`` the build does not list."""
    backend = of(build["options"])
    named = (None if params is None else named_devices(params, kind)) or []
    if backend is None:
        return f"build '{build['name']}' is a CPU build: it has no {'/'.join(named)}" if named else None
    found = gpu_devices(backend, build["devices"]["devices"])
    if not found:
        return (f"build '{build['name']}' lists no {backend.device_prefix} device on this host (its --list-devices):"
                f" a {backend.name} binary without its GPU runs on the CPU, and those numbers are not GPU numbers")
    if (label := software_label(found)) and not build.get("software_opt_in"):
        return (f"build '{build['name']}' sees a {label.split(':')[0]}: set builds.{build['name']}.software_device: "
                "true to run it as a functional check")
    listed = [d["name"] for d in found]
    if missing := [n for n in named if n not in listed]:
        return f"build '{build['name']}' has no {', '.join(missing)}: its --list-devices shows {', '.join(listed)}"
    return None


def used_devices(build: Mapping[str, Any], params: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """The GPUs of a build a cell runs on, in the order llama.cpp numbers them for ``-mg`` and ``-ts``: those its
    ``device`` names (none: no GPU), else every GPU of the build's list."""
    found = gpu_devices(of(build["options"]), build["devices"]["devices"])
    named = named_devices(params, kind)
    if named is None:
        return found
    by_name = {d["name"]: d for d in found}
    return [by_name[n] for n in named if n in by_name]


def offloads(build: Mapping[str, Any], params: Mapping[str, Any], kind: str) -> bool:
    """Whether a cell's offloaded layers go to a GPU: a GPU build's, unless its ``device`` is none."""
    return of(build["options"]) is not None and named_devices(params, kind) != []


def split_devices(build: Mapping[str, Any], params: Mapping[str, Any], kind: str,
                  free_mib: Mapping[str, float]) -> list[list[Any]]:
    """Where a GPU build's offloaded layers go, as llama.cpp splits them: [[device, share], ...]. One device, or
    ``split_mode: none``: the main GPU alone; otherwise every GPU the cell uses (``used_devices``), by
    ``tensor_split`` where set (a device it leaves out, or gives 0, takes nothing), else by each device's free
    memory. Empty for a CPU build or ``device: none``."""
    found = used_devices(build, params, kind)
    if not found:
        return []
    if len(found) == 1 or axes.value(params, "split_mode", kind) == "none":
        return [[found[min(int(axes.value(params, "main_gpu", kind) or 0), len(found) - 1)]["name"], 1.0]]
    split = axes.value(params, "tensor_split", kind)
    shares = ([float(x) for x in str(split).split("/")] if split else
              [free_mib.get(d["name"], float(d.get("free_mib") or 1)) for d in found])
    return [[d["name"], share] for d, share in zip(found, shares) if share > 0]


def recorded_free_mib(build: Mapping[str, Any]) -> dict[str, float]:
    """Each GPU device's free MiB as the build's ``--list-devices`` reported it (what llama.cpp splits layers by)."""
    return {d["name"]: float(d["free_mib"]) for d in gpu_devices(of(build["options"]), build["devices"]["devices"])
            if d.get("free_mib") is not None}


def device_problem(params: Mapping[str, Any], kind: str, backend: Backend | None, build: str) -> str | None:
    """Why a cell's ``device`` cannot be one of a build's, from its CMake options alone (which names its list will
    hold is known only once built), or None: a device on a CPU build, or of another backend."""
    named = named_devices(params, kind)
    if not named:
        return None
    if backend is None:
        return (f"device {'/'.join(named)} names a GPU, and build '{build}' is a CPU build (device: none runs it on "
                "the CPU)")
    if others := [n for n in named if not _own(backend).fullmatch(n)]:
        return (f"device {'/'.join(named)}: build '{build}' is {backend.name}, whose devices are "
                f"{backend.device_prefix}0, {backend.device_prefix}1, ..., not {', '.join(others)}")
    return None


def split_problem(params: Mapping[str, Any], kind: str, backend: Backend | None = None,
                  build: str | None = None) -> str | None:
    """Why llama.cpp would refuse a cell's split over several GPUs, or None: ``-sm tensor`` splits the K/V too and
    needs flash attention on; ``-sm row`` needs split buffers, which only some backends have (``backend``: the
    build's, where known)."""
    mode = axes.value(params, "split_mode", kind)
    if mode == "tensor" and str(axes.value(params, "flash_attn", kind)) not in ("on", "1", "True"):
        return "split_mode tensor needs flash_attn on"
    if mode == "row" and backend is not None and not backend.split_row:
        able = ", ".join(b.name for b in BACKENDS.values() if b.split_row)
        return (f"split_mode row needs a backend with split buffers ({able}); build '{build}' is {backend.name}")
    return None

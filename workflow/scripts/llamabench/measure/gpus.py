"""The node's NVIDIA GPUs as ``nvidia-smi`` lists them (the hardware record, a CUDA build's architectures), and each
GPU's free memory for the fit decision.

Whether a GPU build's cells can run is the build's own ``--list-devices``'s to say, for every backend
(core/backends.py ``unusable``): a GPU binary on a host without its GPU silently runs on the CPU, and those numbers
must never be reported as GPU numbers.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from llamabench.core import backends

def query(fields: list[str]) -> tuple[list[dict[str, str]] | None, str | None]:
    """``nvidia-smi --query-gpu`` as one dict per GPU, or None and why there is none."""
    if not shutil.which("nvidia-smi"):
        return None, "nvidia-smi is not on PATH (no NVIDIA driver)"
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, f"nvidia-smi failed: {err}"
    if out.returncode != 0:
        return None, f"nvidia-smi failed: {(out.stderr or out.stdout).strip()[:300]}"
    rows = parse_query(out.stdout, fields)
    return rows, None if rows else "nvidia-smi lists no GPU"


def parse_query(text: str, fields: list[str]) -> list[dict[str, str]]:
    """``--query-gpu=<fields> --format=csv,noheader,nounits`` output: a line per GPU, values in field order.
    Names hold no commas; ``[N/A]`` and ``[Not Supported]`` mark values a GPU does not report, kept as None."""
    rows = []
    for line in text.splitlines():
        if line.strip():
            values = [v.strip() for v in line.split(",")]
            rows.append({f: None if v.startswith("[") else v for f, v in zip(fields, values)})
    return rows


def gpu_missing(record: dict[str, Any]) -> str | None:
    """Why a CUDA build's cells cannot be GPU measurements on this host, or None."""
    if record["gpus"]:
        return None
    return (f"no GPU on {record['host']['hostname']} ({record['gpu_error']}): a CUDA binary would run on the CPU, "
            "and those numbers are not GPU numbers")


def free_mib(build: dict[str, Any]) -> dict[str, float]:
    """Each GPU's free memory in MiB by llama.cpp's device name: read now through nvidia-smi for a CUDA build (what
    other processes hold changes), else as the build's own ``--list-devices`` reported it."""
    backend = backends.of(build["options"])
    if backend is None:
        return {}
    if backend.nvml:
        rows, _ = query(["index", "memory.free"])
        if rows:
            return {f"CUDA{row['index']}": float(row["memory.free"]) for row in rows if row.get("memory.free")}
    return backends.recorded_free_mib(build)


# vulkaninfo's text: a block per physical device from ``GPU<i>:``; the limits llama.cpp's Vulkan backend checks
# before it takes a tensor (ggml-vulkan ``supports_op``): none larger than maxBufferSize, and none larger than
# maxStorageBufferRange unless the device has 64-bit indexing in shaders.
_GPU_BLOCK = re.compile(r"^GPU(\d+):$", re.MULTILINE)
_FIELD = {"name": re.compile(r"^\s*deviceName\s*=\s*(.+?)\s*$", re.MULTILINE),
          "storage": re.compile(r"^\s*maxStorageBufferRange\s*=\s*(\w+)", re.MULTILINE),
          "buffer": re.compile(r"^\s*maxBufferSize\s*=\s*(\w+)", re.MULTILINE)}


def parse_vulkaninfo(text: str) -> dict[str, int]:
    """The largest tensor each Vulkan device takes, in bytes, by its name (llama.cpp's device description)."""
    found = {}
    starts = [m.start() for m in _GPU_BLOCK.finditer(text)]
    for start, end in zip(starts, [*starts[1:], len(text)]):
        block = text[start:end]
        values = {key: pattern.search(block) for key, pattern in _FIELD.items()}
        if values["name"] is None or values["storage"] is None:
            continue
        limits = [int(values["buffer"].group(1), 0)] if values["buffer"] else []
        if "VK_EXT_shader_64bit_indexing" not in block:
            limits.append(int(values["storage"].group(1), 0))
        found[values["name"].group(1)] = min(limits)
    return found


@functools.cache
def _vulkaninfo() -> str:
    if not shutil.which("vulkaninfo"):
        return ""
    try:
        out = subprocess.run(["vulkaninfo"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout if out.returncode == 0 else ""


# a backend's ``tensor_limits`` tool -> {device description: the largest tensor it takes, bytes}
LIMIT_READERS: dict[str, Callable[[], dict[str, int]]] = {"vulkaninfo": lambda: parse_vulkaninfo(_vulkaninfo())}


def tensor_limits(build: dict[str, Any]) -> dict[str, int]:
    """The largest tensor (bytes) each GPU of a build takes, by llama.cpp's device name, where the backend has such
    a limit and the machine says it: a Vulkan device's from ``vulkaninfo`` (Mesa's lavapipe takes none over
    128 MiB: Gemma's 170 MiB tied output stays on the CPU). llama.cpp keeps a larger weight on the CPU, and so
    does the predictor. Empty where unknown (no vulkaninfo: every weight is predicted where its layer goes)."""
    backend = backends.of(build["options"])
    if backend is None or backend.tensor_limits is None:
        return {}
    by_name = LIMIT_READERS[backend.tensor_limits]()
    return {d["name"]: by_name[d["description"]] for d in backends.gpu_devices(backend, build["devices"]["devices"])
            if d.get("description") in by_name}

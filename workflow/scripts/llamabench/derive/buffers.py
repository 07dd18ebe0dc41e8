"""What a run's log says it allocated: llama.cpp's own buffer sizes, per context, device and component.

llama.cpp logs (with ``-v``, as every cell runs) each buffer it allocates: the
model's weights per buffer type once per model load (``CPU_Mapped``, ``CPU``,
``CPU_REPACK``, ``CUDA0``, ``Vulkan0``, ``RPC0[host:port]``...), then per context its K/V cache
(one line per cache: a sliding-window model has two), its output buffer and its
compute buffer per backend. Those are the components a memory prediction is
checked against. An RPC client also logs each worker it uses and the free memory
the worker reports, by which llama.cpp splits the layers.
"""

from __future__ import annotations

import re
from typing import Any

BUFFER = re.compile(r"(?P<buffer>\S+)\s+(?P<what>model|KV|compute|output) buffer size\s*=\s*(?P<mib>[\d.]+) MiB")
COMPONENT = {"model": "weights", "KV": "kv", "compute": "compute", "output": "output"}
NEW_CONTEXT = "llama_context: constructing llama_context"
# "using device RPC0 (127.0.0.1:51455) (unknown id) - 24105 MiB free"
RPC_DEVICE = re.compile(r"using device RPC\d* \((?P<address>[^)]+)\).* - (?P<free>\d+) MiB free")
RPC_BUFFER = re.compile(r"^RPC\d*\[(?P<address>[^\]]+)\]$")


def rpc_name(address: str) -> str:
    """An RPC worker's device name, by its address (trees name every worker's buffers ``RPC0[...]``)."""
    return f"RPC[{address}]"


def device(buffer: str) -> str:
    """The device a buffer lives on: host buffer types (``CPU_Mapped``, ``CPU_REPACK``, a GPU backend's pinned
    ``CUDA_Host``, ``Vulkan_Host``, ``ROCm_Host``) are the CPU's; ``RPC0[127.0.0.1:5]`` is that worker's."""
    if buffer.startswith("CPU") or buffer.endswith("_Host"):
        return "CPU"
    match = RPC_BUFFER.match(buffer)
    return rpc_name(match["address"]) if match else buffer


def logged(text: str) -> list[dict[str, Any]]:
    """Every context a log shows, in order, with the weights of the model it was made for:
    [{"buffers": {buffer: MiB}, "devices": {device: {component: MiB}}}]."""
    contexts: list[dict[str, Any]] = []
    weights: dict[str, float] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        if NEW_CONTEXT in line:
            current = {"buffers": dict(weights), "devices": {}}
            for buffer, mib in weights.items():
                _add(current, device(buffer), "weights", mib)
            contexts.append(current)
            continue
        match = BUFFER.search(line)
        if not match:
            continue
        buffer, what, mib = match["buffer"], COMPONENT[match["what"]], float(match["mib"])
        if what == "weights":
            if current is not None:  # a new model load: its weights replace the last one's
                weights, current = {}, None
            weights[buffer] = weights.get(buffer, 0.0) + mib
        elif current is not None:
            _add(current, device(buffer), what, mib)
    return contexts


def rpc_devices(text: str) -> list[list[Any]]:
    """The RPC workers a client used, in its order, with the free MiB each reported: [[name, free MiB]]."""
    found: dict[str, float] = {}
    for match in RPC_DEVICE.finditer(text):
        found.setdefault(rpc_name(match["address"]), float(match["free"]))
    return [[name, free] for name, free in found.items()]


def _add(context: dict[str, Any], dev: str, component: str, mib: float) -> None:
    parts = context["devices"].setdefault(dev, {})
    parts[component] = round(parts.get(component, 0.0) + mib, 2)

"""How much memory a run will take, per device and component, predicted before it runs.

A prediction follows llama.cpp's own allocation rules (mid-2026 trees), from the
GGUF file's tensors and hyper-parameters (``core/model_shape.py`` reads them) and the
run's parameters:

- **weights**: every tensor where the layer placement puts it (``matrix.placement``'s
  rule: the last ``n_gpu_layers`` of the block count + 1, the output layer first,
  the token embedding always on the CPU). On the CPU with mmap the file is mapped
  (``CPU_Mapped``: the span of its mapped tensors); without it the tensors are read into an
  anonymous ``CPU`` buffer. Either way the CPU backend *repacks* the matrices it
  has faster kernels for into a ``CPU_REPACK`` buffer, a second copy: on x86 with
  AVX2, Q4_0, Q4_K, IQ4_NL and MXFP4 matrices with a row count divisible by 8
  (Q2_K with AVX-512), never the token embedding (read by row, not multiplied).
  With mmap the mapped pages of repacked tensors stay resident too.
- **kv**: per layer, K and V of the layer's head count and sizes, in their cache
  types (a quantised type's bytes per block), for ``n_ctx`` padded to 256 cells per
  stream; a sliding-window layer keeps ``min(n_ctx, window + n_ubatch)`` cells, padded.
- **output**: the logits of one token per sequence (llama.cpp reserves more when a
  batch asks for more outputs).
- **compute**: the graph reserved for the worst micro-batch (``n_ubatch`` tokens,
  as many outputs): the larger of the output stage (the logits of every output
  plus the hidden states) and a layer's stage (the feed-forward's intermediate
  activations, or without flash attention the attention scores of every head
  over the whole cache, with their mask).

The host's resident total adds the process's own code, libraries, heap and
vocabulary tables (``runtime_mib``), counts the mapped file once whatever is
repacked from it, and counts of the compute buffer what the run's largest
micro-batch touches (it asks for the logits of its last token only). A GPU's
total adds the CUDA context (``CUDA_CONTEXT_MIB``); an RPC worker's is its buffers.

Everything here is a pure function of its arguments: predictions are made again
in aggregation (``memory_table``), so improving this file re-measures nothing.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping
from typing import Any

MIB = 2**20
# What a llama.cpp process holds besides its buffers: code, libraries, heap and thread stacks, and its
# vocabulary's tables, which grow with the token count. Calibrated by benchmarks/memory_grid.py on two tiny
# synthetic models (1000 and 262144 tokens, a few MiB of weights), not on the models it is checked against.
RUNTIME_MIB = 14.6
RUNTIME_BYTES_PER_TOKEN = 187
# What the CUDA runtime takes on a GPU before any buffer (context, kernels): not measured here (no GPU lent).
CUDA_CONTEXT_MIB = 300.0
PAD_CELLS = 256
# Sliding-window layer patterns llama.cpp sets per architecture (``set_swa_pattern(n)``: every n-th layer
# attends to the whole context); other architectures are read as full attention everywhere, an upper bound.
SWA_PATTERNS = {"gemma2": 2, "gemma3": 6, "cohere2": 4}
# (GGML type, the CPU feature it needs) repacked on x86 (ggml-cpu/repack.cpp): rows divisible by 8.
X86_REPACK = {"Q4_0": "avx2", "Q4_K": "avx2", "IQ4_NL": "avx2", "MXFP4": "avx2", "Q2_K": "avx512f"}
COMPONENTS = ("weights", "kv", "output", "compute")


class Unpredictable(ValueError):
    """The run asks for something this predictor does not know (a cache type llama.cpp would reject)."""


def type_bytes(type_name: str, elements: int) -> int:
    """Bytes of ``elements`` values of a GGML type (whole blocks)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType[str(type_name).upper()]]
    except KeyError:
        raise Unpredictable(f"unknown GGML type {type_name!r}") from None
    return math.ceil(elements / block) * size


def pad(value: int, to: int = PAD_CELLS) -> int:
    return -(-value // to) * to


def swa_layers(shp: Mapping[str, Any]) -> list[bool]:
    """Which layers attend through a sliding window."""
    pattern = SWA_PATTERNS.get(shp["architecture"])
    if not shp.get("sliding_window") or not pattern:
        return [False] * shp["layers"]
    return [il % pattern < pattern - 1 for il in range(shp["layers"])]


def kv_heads(shp: Mapping[str, Any], layer: int) -> int:
    heads = shp["kv_heads"]
    return int(heads[layer]) if isinstance(heads, list) else int(heads)


def repacked(tensor: Mapping[str, Any], cpu_flags: frozenset[str]) -> bool:
    """Whether the CPU backend keeps a repacked copy of this tensor."""
    need = X86_REPACK.get(tensor["type"])
    return (need is not None and need in cpu_flags and tensor["rows"] % 8 == 0
            and tensor["name"] != "token_embd.weight" and tensor["name"].endswith(".weight")
            and tensor["rows"] > 1)


def context(run: Mapping[str, Any]) -> dict[str, int]:
    """llama.cpp's context sizes for a requested context: batch capped by context, ubatch by batch, cells padded."""
    n_seq = int(run.get("n_seq", 1))
    n_batch = min(int(run["n_batch"]), int(run["n_ctx"]))
    n_ubatch = min(int(run["n_ubatch"]), n_batch)
    n_ctx = pad(int(run["n_ctx"]))
    unified = bool(run.get("kv_unified", False)) or n_seq == 1
    per_stream = n_ctx if unified else pad(n_ctx // n_seq)
    return {"n_ctx": n_ctx, "n_batch": n_batch, "n_ubatch": n_ubatch, "n_seq": n_seq,
            "streams": 1 if unified else n_seq, "cells": per_stream, "unified": int(unified)}


def predict(shp: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """One context of one run in MiB: ``devices`` {device: {component: MiB}}, ``buffers`` (the weights' buffer
    types, as llama.cpp names them), ``resident`` {device: peak MiB}.

    ``run``: ``n_ctx``, ``n_batch``, ``n_ubatch``, ``n_seq`` (parallel sequences), ``kv_unified``,
    ``type_k``/``type_v``, ``flash_attn`` (resolved: bool), ``mmap`` (bool), ``gpu_layers`` (layers offloaded,
    the block count + 1 at most), ``gpu`` (the one device they go to) or ``devices`` ([name, share] of each,
    shares as llama.cpp splits by: each device's free memory), ``cpu_flags``, ``touched_tokens``
    (the most tokens a micro-batch of the run holds: a short prompt touches a share of the compute buffer),
    ``max_tensor_bytes`` ({device: the largest tensor it takes}; a larger weight stays on the CPU, as llama.cpp
    keeps it there, and a larger K/V tensor is ``oversized``: {device: its largest, how many, the limit}).
    """
    ctx = context(run)
    n_layer = shp["layers"]
    offloaded = min(int(run.get("gpu_layers", 0) or 0), n_layer + 1)
    targets = [(str(name), float(share)) for name, share in run.get("devices") or [[run.get("gpu") or "GPU", 1]]]
    first_offloaded = n_layer + 1 - offloaded  # layers [first_offloaded, n_layer] are offloaded; n_layer: output
    flags = frozenset(run.get("cpu_flags", ()))
    # llama.cpp splits the offloaded layers across devices in proportion to their shares (free memory).
    total = sum(share for _, share in targets) or 1.0
    bounds = list(itertools.accumulate(share / total for _, share in targets))

    def device_of(layer: int | None, name: str = "") -> str:
        if name == "token_embd.weight" or not offloaded:
            return "CPU"
        index = n_layer if layer is None else layer  # output and output_norm: the output layer
        if index < first_offloaded:
            return "CPU"
        place = (index - first_offloaded) / offloaded
        return targets[min(bisect.bisect_right(bounds, place), len(targets) - 1)][0]

    devices: dict[str, dict[str, float]] = {"CPU": dict.fromkeys(COMPONENTS, 0.0)}
    for layer in range(first_offloaded, n_layer + 1):
        devices.setdefault(device_of(layer), dict.fromkeys(COMPONENTS, 0.0))
    mmap = run.get("mmap", True)
    caps = run.get("max_tensor_bytes") or {}

    def takes(device: str, size: int) -> bool:
        """Whether a device takes a tensor this large (``max_tensor_bytes``; the CPU any)."""
        return device == "CPU" or size <= caps.get(device, size)

    weights: dict[str, int] = {"CPU_Mapped" if mmap else "CPU": 0, "CPU_REPACK": 0}
    mapped: list[Mapping[str, Any]] = []
    for tensor in shp["tensors"]:
        device = device_of(tensor["layer"], tensor["name"])
        if not takes(device, tensor["bytes"]):
            device = "CPU"
        if device != "CPU":
            weights[device] = weights.get(device, 0) + tensor["bytes"]
        elif repacked(tensor, flags):
            weights["CPU_REPACK"] += tensor["bytes"]
        elif mmap:
            mapped.append(tensor)
        else:
            weights["CPU"] += tensor["bytes"]
    if mapped:
        # The mapped buffer spans the file from its first tensor to its last, repacked ones between included;
        # the rest of the mapping is released after loading.
        weights["CPU_Mapped"] = (max(t["offset"] + t["bytes"] for t in mapped) - min(t["offset"] for t in mapped))
    names = {tensor["name"]: tensor["bytes"] for tensor in shp["tensors"]}
    output_device = device_of(None, "output.weight")
    output_bytes = names.get("output.weight", names.get("token_embd.weight", 0))
    if not takes(output_device, output_bytes):
        output_device = "CPU"  # and its matrix product with it: the device cannot take the weight
    elif "output.weight" not in names and output_device != "CPU":
        # a tied output layer copies the embedding to its device
        weights[output_device] = weights.get(output_device, 0) + names.get("token_embd.weight", 0)
    buffers = {name: size / MIB for name, size in weights.items() if size}
    for name, size in buffers.items():
        devices["CPU" if name.startswith("CPU") else name]["weights"] += size

    window = shp.get("sliding_window") or 0
    swa = swa_layers(shp)
    # A K/V tensor over its device's largest is no weight llama.cpp can move: it stops (ggml-backend "pre-allocated
    # tensor ... in a buffer (Vulkan0) that cannot run the operation"), so the cell cannot fit there.
    oversized: dict[str, dict[str, Any]] = {}
    for il in range(n_layer):
        cells = ctx["cells"]
        if swa[il]:
            cells = pad(min(ctx["cells"], window * (ctx["n_seq"] if ctx["unified"] else 1) + ctx["n_ubatch"]))
        width = kv_heads(shp, il)
        k, v = (cells * ctx["streams"] * type_bytes(run.get(f"type_{x}", "f16"), width * shp[f"head_{x}"])
                for x in ("k", "v"))
        device = device_of(il)
        devices[device]["kv"] += (k + v) / MIB
        if too_large := [size for size in (k, v) if not takes(device, size)]:
            entry = oversized.setdefault(device, {"tensor_mib": 0.0, "tensors": 0, "limit_mib": caps[device] / MIB})
            entry.update(tensor_mib=round(max(entry["tensor_mib"], max(too_large) / MIB), 2),
                         tensors=entry["tensors"] + len(too_large))

    devices["CPU"]["output"] = shp["vocab"] * 4 * ctx["n_seq"] / MIB
    flash_attn = bool(run.get("flash_attn", True))
    touched = dict(ctx, n_ubatch=min(ctx["n_ubatch"], int(run.get("touched_tokens") or ctx["n_ubatch"])))
    for device in devices:
        devices[device]["compute"] = compute_bytes(shp, ctx, flash_attn, output=device == output_device,
                                                   layers=device != "CPU" or not offloaded) / MIB
    rounded = {device: {k: round(v, 2) for k, v in parts.items()} for device, parts in devices.items()}
    # A run asks for the logits of each sequence's last token only: that is what its output stage touches.
    host_touched = compute_bytes(shp, touched, flash_attn, output=output_device == "CPU", layers=not offloaded,
                                 outputs=ctx["n_seq"])
    found = {"devices": rounded, "buffers": {name: round(size, 2) for name, size in buffers.items()},
             "resident": resident(rounded, host_touched / MIB, runtime_mib(shp["vocab"]))}
    return {**found, "oversized": oversized} if oversized else found


def compute_bytes(shp: Mapping[str, Any], ctx: Mapping[str, int], flash_attn: bool, output: bool = True,
                  layers: bool = True, outputs: int | None = None) -> int:
    """The compute buffer a device reserves for the worst micro-batch: the largest of its stages.

    The output stage (on the output layer's device): the logits of every output (``outputs``; the reservation
    assumes every token of the micro-batch) and three hidden-state vectors per token. A layer's stage (on a
    device that holds layers): the feed-forward's intermediate vector and two hidden-state vectors per token,
    or without flash attention the scores of every head over the whole cache
    (softmax works in place) with an f32 mask, beside the hidden state, queries, keys and values (three
    hidden, two query and two key/value widths per token). A host whose layers all went elsewhere keeps the
    gathered token embeddings and the attention masks (f16, one per cache)."""
    tokens, embedding = ctx["n_ubatch"], shp["embedding"]
    hidden = 4 * tokens * embedding
    cells = ctx["cells"] * ctx["streams"]
    stages = [hidden + 2 * tokens * cells * (2 if shp.get("sliding_window") else 1)]
    if output:
        stages.append(4 * (tokens if outputs is None else outputs) * shp["vocab"] + 3 * hidden)
    if layers:
        stages.append(4 * tokens * (shp["ffn"] or 0) + 2 * hidden)
        if not flash_attn:
            width = 3 * embedding + 2 * shp["heads"] * shp["head_k"] + 2 * max(
                kv_heads(shp, il) for il in range(shp["layers"])) * shp["head_k"]
            stages.append(4 * tokens * (cells * (shp["heads"] + 1) + width))
    return max(stages)


def runtime_mib(vocab: int) -> float:
    """What the process holds besides its buffers, in MiB."""
    return RUNTIME_MIB + RUNTIME_BYTES_PER_TOKEN * vocab / MIB


def resident(devices: Mapping[str, Mapping[str, float]], host_compute: float, runtime: float) -> dict[str, float]:
    """Predicted peak MiB per device: the host's resident set (its buffers, the compute pages the run touches,
    the process's own ``runtime``), a GPU's buffers and its CUDA context, an RPC worker's buffers."""
    found = {}
    for device, parts in devices.items():
        compute = host_compute if device == "CPU" else parts["compute"]
        own = runtime if device == "CPU" else 0.0 if device.startswith("RPC") else CUDA_CONTEXT_MIB
        found[device] = round(own + parts["weights"] + parts["kv"] + parts["output"] + compute, 1)
    return found

"""What a build's CMake options and a topology's link and bind settings mean.

Read wherever a decision depends on them: the plan (CUDA builds need the
hardware record, RPC topologies need RPC builds), the cells (a GPU build's runs
are sampled for energy; a K/V pair without a compiled kernel is noted) and the
summaries (a link's rate is the ceiling of what crosses it).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

_TRUE = {"ON", "1", "TRUE", "YES", "Y"}


def value(options: list[str], name: str) -> str | None:
    """The value ``-D<name>=...`` (or ``-D<name>:TYPE=...``) takes in ``options``; as in CMake, the last one wins."""
    found = None
    for opt in options:
        match = re.fullmatch(rf"-D{name}(?::\w+)?=(.*)", opt)
        if match:
            found = match.group(1).strip()
    return found


def enabled(options: list[str], name: str) -> bool:
    return (value(options, name) or "").upper() in _TRUE


def is_true(text: str | None) -> bool:
    return (text or "").upper() in _TRUE


# The K/V type pairs a CUDA build compiles flash-attention kernels for unless told otherwise
# (GGML_CUDA_FA_QUANTS; older trees: the same pairs, or all with GGML_CUDA_FA_ALL_QUANTS=ON).
FA_KV_PAIRS_DEFAULT = ("f16-f16", "q4_0-q4_0", "q8_0-q8_0", "bf16-bf16")


def flash_attn_kv_pairs(options: list[str]) -> tuple[str, ...] | None:
    """The K/V type pairs this build has CUDA flash-attention kernels for, ("all",) for every pair; None for
    a build without CUDA."""
    if not enabled(options, "GGML_CUDA"):
        return None
    if enabled(options, "GGML_CUDA_FA_ALL_QUANTS"):
        return ("all",)
    chosen = value(options, "GGML_CUDA_FA_QUANTS")
    if chosen is None:
        return FA_KV_PAIRS_DEFAULT
    pairs = [p.strip().lower() for p in chosen.replace(",", ";").split(";") if p.strip()]
    return ("all",) if "all" in pairs else tuple(dict.fromkeys(["f16-f16", *pairs]))


def flash_attn_off(value: Any) -> bool:
    """Whether a cell's (canonical) flash_attn turns it off; ``auto`` turns it on where every device supports
    it, as the CPU and CUDA do."""
    return str(value) in ("off", "0")


def slow_kv_path(options: list[str], params: Mapping[str, Any]) -> str | None:
    """Why a cell's K/V cache types take a slow flash-attention path on this build, or None: a pair without a
    compiled kernel is converted to f16 (current trees) or runs attention on the CPU (older trees), silently."""
    pairs = flash_attn_kv_pairs(options)
    pair = f"{params['cache_type_k']}-{params['cache_type_v']}".lower()
    if pairs is None or "all" in pairs or pair in pairs or flash_attn_off(params["flash_attn"]):
        return None
    return (f"K/V types {pair} have no CUDA flash-attention kernel in this build (it has {', '.join(pairs)}): "
            "llama.cpp converts them to f16 or, in older trees, runs attention on the CPU; build with "
            f"-DGGML_CUDA_FA_QUANTS={pair} (or all; -DGGML_CUDA_FA_ALL_QUANTS=ON in older trees) to measure "
            "their own kernel")


def needs_public_opt_in(address: str) -> bool:
    """0.0.0.0, :: or a globally routable address: reachable beyond this machine or a private network."""
    ip = ipaddress.ip_address(address)
    return ip.is_unspecified or ip.is_global


def rate_bits(rate: str) -> int | None:
    """'100mbit' -> 100_000_000; 'unlimited' -> None."""
    if rate == "unlimited":
        return None
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([kmg]?)bit", rate).groups()
    return int(float(number) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[unit])

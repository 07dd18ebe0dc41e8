"""The node's NVIDIA GPUs as ``nvidia-smi`` lists them, and what their absence means for a CUDA build's cells.

A CUDA binary on a host without a GPU silently runs on the CPU; those numbers
must never be reported as GPU numbers, so such cells are recorded as skipped.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from llamabench.core import records

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


def skip_reason(inputs: Any) -> str | None:
    """Why a cell is not run: one of a CUDA build (its rule then has a ``hardware`` input) on a host
    without a GPU; None otherwise."""
    if "hardware" not in inputs.keys():
        return None
    return gpu_missing(records.read(inputs.hardware, "hardware"))


def free_mib() -> dict[str, float]:
    """Each GPU's free memory in MiB, by llama.cpp's device name (``CUDA<index>``); none without a GPU."""
    rows, _ = query(["index", "memory.free"])
    return {f"CUDA{row['index']}": float(row["memory.free"]) for row in rows or [] if row.get("memory.free")}

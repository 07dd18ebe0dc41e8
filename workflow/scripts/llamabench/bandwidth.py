"""The machine's memory bandwidth, probed once per run: the ceiling of token generation on the CPU.

Generating a token reads every weight once (model.bytes_read_per_token), so no
CPU run generates faster than bandwidth / bytes per token. The probe copies a
buffer far larger than any cache with one numpy copy per logical CPU in
parallel (numpy releases the GIL while copying), counts bytes read plus bytes
written, and keeps the best of several passes: a copy is what reading weights
costs, and the best pass is the least disturbed one. A GPU cell needs its GPU's
bandwidth instead; this probe does not measure that.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from llamabench.core import records
from llamabench.measure import machine_lock, system_state


BUFFER_MIB = 512
PASSES = 7


def bandwidth(smk: Any) -> None:
    """Rule ``bandwidth``: results/bandwidth.json."""
    with machine_lock.held("memory bandwidth probe") as waited:
        state = system_state.snapshot()
        result = probe()
    records.write(smk.output[0], "bandwidth", {**result, "lock_wait_s": round(waited, 3), "system": state})


def probe(buffer_mib: int = BUFFER_MIB, passes: int = PASSES) -> dict[str, Any]:
    threads = os.cpu_count() or 1
    src = np.ones(buffer_mib * 2**20 // 8, dtype=np.float64)
    dst = np.empty_like(src)
    chunks = np.array_split(np.arange(src.size), threads)
    bounds = [(int(c[0]), int(c[-1]) + 1) for c in chunks if c.size]

    def copy(bound: tuple[int, int]) -> None:
        np.copyto(dst[bound[0]:bound[1]], src[bound[0]:bound[1]])

    rates = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(copy, bounds))  # warm-up: pages touched, threads started
        for _ in range(passes):
            start = time.perf_counter()
            list(pool.map(copy, bounds))
            rates.append(2 * src.nbytes / (time.perf_counter() - start) / 1e9)
    return {"method": f"numpy copy of {buffer_mib} MiB in {threads} threads, bytes read + written, best of {passes}",
            "gb_per_s": max(rates), "passes_gb_per_s": [round(r, 2) for r in rates], "threads": threads}

"""When a serving cell's requests are sent and how long each one is: seeded draws, the same for every build.

A closed arrival keeps ``concurrency`` requests in flight (the next is sent when
one ends): it measures latency at a fixed load, not at an offered rate. The open
ones send on a schedule whatever the server is doing, as users do: ``constant``
every 1/rate s, ``poisson`` with exponential gaps (coefficient of variation 1),
``gamma`` with gamma gaps of shape ``burstiness`` (CV 1/sqrt(shape): below 1,
bursts and lulls; vLLM's ``--burstiness``). Lengths are fixed, or drawn uniformly
within ``length_spread`` of ``prompt_tokens`` and ``max_tokens``, or a dataset's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

OPEN = ("constant", "poisson", "gamma")


def rng(seed: str) -> np.random.Generator:
    """A generator seeded by text (the plan's seed, the cell, the round): the same draws wherever it runs."""
    return np.random.default_rng([ord(c) for c in seed])


def schedule(params: Mapping[str, Any], count: int, seed: str) -> list[float] | None:
    """Send times (s from the level's start, the first at 0) of ``count`` requests; None for a closed arrival."""
    arrival = params.get("arrival", "closed")
    if arrival not in OPEN:
        return None
    rate = params["rate"]
    if arrival == "constant":
        gaps = np.full(count - 1, 1 / rate)
    elif arrival == "poisson":
        gaps = rng(seed).exponential(1 / rate, count - 1)
    else:
        shape = params.get("burstiness", 1.0)
        gaps = rng(seed).gamma(shape, 1 / (rate * shape), count - 1)
    return [0.0, *np.cumsum(gaps).tolist()]


def lengths(params: Mapping[str, Any], count: int, seed: str) -> list[tuple[int, int]]:
    """(prompt tokens, output tokens) of each request: fixed, or uniform within ``length_spread`` (at least 2
    prompt tokens, BOS and one, and 1 output token)."""
    spread = params.get("length_spread", 0) or 0
    prompt, output = params["prompt_tokens"], params["max_tokens"]
    if not spread:
        return [(prompt, output)] * count
    draws = rng(seed).uniform(1 - spread, 1 + spread, (count, 2))
    return [(max(2, round(prompt * a)), max(1, round(output * b))) for a, b in draws]


def dataset(path: Path, count: int) -> list[dict[str, Any]]:
    """``count`` entries of a JSONL dataset ({"prompt": text, "max_tokens": n optional}), taken in turn (cycled)."""
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    bad = [i + 1 for i, e in enumerate(entries) if not isinstance(e, dict) or not isinstance(e.get("prompt"), str)]
    if not entries or bad:
        raise ValueError(f"{path}: every line must be a JSON object with a text 'prompt' (line {bad[:1] or 1})")
    return [entries[i % len(entries)] for i in range(count)]


def cv(times: list[float]) -> float | None:
    """The coefficient of variation of the gaps between successive times: 1 for Poisson, 0 for constant."""
    gaps = np.diff(sorted(times))
    return float(np.std(gaps, ddof=1) / np.mean(gaps)) if len(gaps) > 1 and np.mean(gaps) > 0 else None

"""The benchmark matrix: which llama-bench cells exist, and their stable ids.

A cell is one complete assignment of every axis. Named groups sweep a few
axes while the rest keep their ``defaults``, so a user need not pay for the
full cross product; ``exclude`` drops partial assignments and ``include``
adds them. Cells that two groups share are one cell: the id is built from
the parameter values alone, so it never changes when groups are renamed or
reordered, and adding one value to an axis adds exactly the new cells.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

# Axis -> (llama-bench flag, short label used in the cell id), in id order.
AXES: dict[str, tuple[str, str]] = {
    "threads": ("-t", "t"),
    "batch_size": ("-b", "b"),
    "ubatch_size": ("-ub", "ub"),
    "n_gpu_layers": ("-ngl", "ngl"),
    "flash_attn": ("-fa", "fa"),
    "cache_type_k": ("-ctk", "ctk"),
    "cache_type_v": ("-ctv", "ctv"),
    "n_prompt": ("-p", "p"),
    "n_gen": ("-n", "n"),
    "n_depth": ("-d", "d"),
    "repetitions": ("-r", "r"),
}


# Figure name -> (x axis, axis that splits lines or None, log-scaled x). Batch and
# ubatch are swept together (ubatch is capped at batch), so the batch figure draws
# one line per ubatch size. Kept here, not in figures.py, so the Snakefile can read
# it without importing matplotlib.
FIGURES: dict[str, tuple[str, str | None, bool]] = {
    "threads": ("threads", None, False),
    "batch": ("batch_size", "ubatch_size", True),
    "gpu_layers": ("n_gpu_layers", None, False),
}


def spell(partial: dict[str, Any]) -> dict[str, Any]:
    """YAML reads a bare ``on``/``off`` as a boolean: spell flash_attn out, wherever it is given."""
    value = partial.get("flash_attn")
    if isinstance(value, bool):
        return {**partial, "flash_attn": "on" if value else "off"}
    return partial


def normalize(params: dict[str, Any]) -> dict[str, Any]:
    """Every axis, in id order (params are compared by repr), flash_attn spelled out."""
    return spell({axis: params[axis] for axis in AXES})


def cell_id(params: dict[str, Any]) -> str:
    """E.g. ``t2_b2048_ub512_ngl99_fa-auto_ctk-f16_ctv-f16_p128_n32_d0_r3``."""
    parts = []
    for axis, (_, label) in AXES.items():
        value = params[axis]
        text = re.sub(r"[^A-Za-z0-9.+]", "-", str(value))
        parts.append(f"{label}{text}" if isinstance(value, int) else f"{label}-{text}")
    return "_".join(parts)


def llama_bench_args(params: dict[str, Any]) -> list[str]:
    """The cell's parameters as llama-bench flags, every axis explicit."""
    args = []
    for axis, (flag, _) in AXES.items():
        args += [flag, str(params[axis])]
    return args


def _matches(params: dict[str, Any], partial: dict[str, Any]) -> bool:
    return all(params.get(key) == value for key, value in partial.items())


def cells_for(bench: dict[str, Any], build: str) -> dict[str, dict[str, Any]]:
    """All cells of one build: {cell id: full parameter assignment}."""
    base = baseline(bench)
    # The defaults cell always runs: every speed-up in the report is relative to it.
    assignments = [dict(base)]
    for group in bench["groups"].values():
        if "builds" in group and build not in group["builds"]:
            continue
        axes = {axis: values for axis, values in group.items() if axis != "builds"}
        for combo in itertools.product(*axes.values()):
            assignments.append(spell({**base, **dict(zip(axes, combo))}))
    excluded = [spell(ex) for ex in bench["exclude"]]
    assignments = [a for a in assignments if a == base or not any(_matches(a, ex) for ex in excluded)]
    assignments += [{**base, **extra} for extra in bench["include"]]
    return {cell_id(params): params for params in map(normalize, assignments)}


def expand(bench: dict[str, Any], builds: list[str], models: list[str]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every cell of every benchmarked (build, model) pair, keyed by (build, model, cell id)."""
    pairs = itertools.product(bench["builds"] or builds, bench["models"] or models)
    return {
        (build, model, cid): params
        for build, model in pairs
        for cid, params in cells_for(bench, build).items()
    }


def baseline(bench: dict[str, Any]) -> dict[str, Any]:
    """The defaults cell: the reference for every speed-up the report shows."""
    return normalize({**bench["defaults"], "repetitions": bench["repetitions"]})

"""Which cells exist, and their stable ids.

A cell is one complete assignment of every axis of its kind (core/axes.py).
Named groups sweep a few axes while the rest keep their ``defaults``, so a
user need not pay for the full cross product; ``exclude`` drops partial
assignments and ``include`` adds them. Cells that two groups share are one
cell: the id is built from the parameter values alone, so it never changes
when groups are renamed or reordered, and adding one value to an axis adds
exactly the new cells. The plan (core/plan.py) crosses these with builds,
models, topologies and rounds.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Mapping
from typing import Any

from llamabench.core import axes
from llamabench.core.axes import BENCHMARK, SERVING
from llamabench.core.errors import Unsupported

# The cell key beyond the parameters, in id order: what later kinds of cell add
# (the RPC topology and the devices it uses, a tuning study's named candidate, the measurement round). A component
# left at None is not spelled, so adding a component to the scheme never renames
# an existing cell: its results stay where they are and are never measured again.
# The source and the platform are not here: they belong to the build (a version
# kept in results/history/<build>@<commit>, a platform's build <build>+<platform>).
KEY_COMPONENTS = ("topology", "devices", "candidate", "round")


def cell_id(params: Mapping[str, Any], kind: str = BENCHMARK, **components: Any) -> str:
    """E.g. ``t2_b2048_ub512_ngl99_fa-auto_ctk-f16_ctv-f16_p128_n32_d0_r3``, then ``_round-2`` and the like."""
    unknown = set(components) - set(KEY_COMPONENTS)
    if unknown:
        raise ValueError(f"unknown cell key components {sorted(unknown)}")
    parts = [_label(axes.AXES[name].label, params[name]) for name in axes.names(kind)
             if not axes.at_default(params, name, kind)]
    parts += [_label(f"{name}-", components[name]) for name in KEY_COMPONENTS if components.get(name) is not None]
    return "_".join(parts)


def _label(label: str, value: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9.+]", "-", str(value).replace("%", "pct"))
    return f"{label}{text}" if isinstance(value, int) or label.endswith("-") else f"{label}-{text}"


def gpu_layers(requested: int | str, model_layers: int) -> int:
    """``n_gpu_layers`` as the tools take it: ``all`` is every repeating layer plus the output layer
    (block count + 1, read from the model, not guessed), ``50%`` that share of them, rounded."""
    if requested == "all":
        return model_layers + 1
    if isinstance(requested, str) and requested.endswith("%"):
        return round(float(requested[:-1]) / 100 * (model_layers + 1))
    return int(requested)


def for_model(params: Mapping[str, Any], model_layers: int | None) -> dict[str, Any]:
    """The cell's parameters as run on one model: ``n_gpu_layers`` resolved (``all``, ``N%``) for its layers."""
    requested = params["n_gpu_layers"]
    if isinstance(requested, int):
        return dict(params)
    if not model_layers:
        raise Unsupported(f"n_gpu_layers: {requested} needs the model's block count, which its GGUF does not give")
    return {**params, "n_gpu_layers": gpu_layers(requested, model_layers)}


def placement(params: Mapping[str, Any], model_layers: int | None, offload: bool) -> dict[str, Any]:
    """Where a run's layers went, as llama.cpp places them: ``n_gpu_layers`` of the block count + 1 layers
    (repeating layers and the output layer; which of them first differs between versions) go to the GPU or
    RPC devices (``offload``: the run has some), the rest stay on the CPU; -1 leaves it to llama.cpp.
    ``op_offload``: whether large prompt matrix products still go to the GPU from layers kept on the CPU
    (llama.cpp's default); ``no_op_offload: 1`` with ``n_gpu_layers: 0`` is a GPU build's true CPU baseline."""
    requested = params["n_gpu_layers"]
    n_gpu = gpu_layers(requested, model_layers) if model_layers else requested
    fact = {"requested": requested, "n_gpu_layers": n_gpu, "model_layers": model_layers, "offloaded_layers": None,
            "cpu_layers": None, "op_offload": offload and not axes.value(params, "no_op_offload")}
    if model_layers is None or not isinstance(n_gpu, int) or n_gpu < 0:
        return fact
    total = model_layers + 1
    offloaded = min(n_gpu, total) if offload else 0
    return {**fact, "offloaded_layers": offloaded, "cpu_layers": total - offloaded}


def baseline(bench: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults cell: the reference for every speed-up the report shows."""
    return axes.normalize({**bench["defaults"], "repetitions": bench["repetitions"]}, BENCHMARK)


def _matches(params: Mapping[str, Any], partial: Mapping[str, Any]) -> bool:
    return all(axes.value(params, key) == value for key, value in axes.canonical_partial(partial).items())


def bench_cells(bench: Mapping[str, Any], build: str) -> dict[str, dict[str, Any]]:
    """All benchmark cells of one build: {cell id: full parameter assignment}."""
    base = baseline(bench)
    # The defaults cell always runs: every speed-up in the report is relative to it.
    assignments = [dict(base)]
    for group in bench["groups"].values():
        if "builds" in group and build not in group["builds"]:
            continue
        swept = {name: values for name, values in group.items() if name != "builds"}
        for combo in itertools.product(*swept.values()):
            assignments.append({**base, **axes.canonical_partial(dict(zip(swept, combo)))})
    assignments = [a for a in assignments if a == base or not any(_matches(a, ex) for ex in bench["exclude"])]
    assignments += [{**base, **axes.canonical_partial(extra)} for extra in bench["include"]]
    cells = (axes.normalize(a, BENCHMARK) for a in assignments)
    return {cell_id(params): params for params in cells}


def serving_defaults_id(serving: Mapping[str, Any]) -> str:
    """The serving defaults cell's id: every serving setting is compared with it."""
    return cell_id(axes.normalize(axes.canonical_partial(serving["defaults"]), SERVING), SERVING)


def serving_cells(serving: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every serving cell of one (build, model): {cell id: parameters}; scenarios cross their own axes. Where
    there are any, the defaults cell runs too, as the reference of every other serving setting; without
    scenarios there are no serving cells."""
    base = axes.canonical_partial(serving["defaults"])
    defaults = axes.normalize(base, SERVING)
    cells = {cell_id(defaults, SERVING): defaults} if serving["scenarios"] else {}
    for scenario in serving["scenarios"].values():
        for combo in itertools.product(*scenario.values()):
            params = axes.normalize({**base, **axes.canonical_partial(dict(zip(scenario, combo)))}, SERVING)
            cells[cell_id(params, SERVING)] = params
    return cells


def bench_partner(serving_params: Mapping[str, Any], bench: Mapping[str, Any]) -> dict[str, Any]:
    """The llama-bench cell that measures a serving cell's settings and workload: its estimate's source."""
    shared = {name: axes.value(serving_params, name, SERVING) for name in axes.SERVER_SHARED}
    return axes.normalize({**baseline(bench), **shared, "n_prompt": serving_params["prompt_tokens"],
                           "n_gen": serving_params["max_tokens"], "n_depth": 0}, BENCHMARK)


def rpc_cells(bench: Mapping[str, Any], name: str, topology: Mapping[str, Any], partials: list[Mapping[str, Any]],
              ) -> dict[str, dict[str, Any]]:
    """The RPC cells of one topology: {cell id: {"params", "link_rate", "devices", "components"}}.

    Each parameter set runs once per link rate and device selection of the topology, and once with
    ``-dev none``: the client alone on its local CPU, the single-node partner of the others. The id is the
    matrix id with the topology (and rate) and the device selection as key components. The topology's devices
    are the cell's: a ``device`` of the benchmark's defaults (a local cell's GPUs) does not apply.
    """
    base = {**baseline(bench), "device": axes.AXES["device"].default}
    cells = {}
    for partial in partials:
        params = axes.normalize({**base, **axes.canonical_partial(partial)}, BENCHMARK)
        for rate in topology["link_rates"]:
            for devices in [*topology["devices"], "none"]:
                label = name if rate == "unlimited" else f"{name}-{rate}"
                components = {"topology": label, "devices": devices.replace("/", "+")}
                cells[cell_id(params, **components)] = {"params": params, "link_rate": rate, "devices": devices,
                                                        "components": components}
    return cells


def round_order(bases: list[Any], round_: int, seed: int) -> list[Any]:
    """The order in which round ``round_`` measures the run's cells: a shuffle seeded by (seed, round).

    Every round shuffles anew, so slow drift of the machine spreads over all cells
    instead of landing on the same few.
    """
    order = sorted(bases)
    random.Random(f"{seed}:{round_}").shuffle(order)
    return order

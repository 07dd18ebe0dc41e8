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
import random
import re
from typing import Any

from llamabench.errors import Unsupported

# Axis -> (llama-bench flag, short label used in the cell id), in id order.
AXES: dict[str, tuple[str, str]] = {
    "threads": ("-t", "t"),
    "batch_size": ("-b", "b"),
    "ubatch_size": ("-ub", "ub"),
    "n_gpu_layers": ("-ngl", "ngl"),
    "no_op_offload": ("-nopo", "nopo"),
    "flash_attn": ("-fa", "fa"),
    "cache_type_k": ("-ctk", "ctk"),
    "cache_type_v": ("-ctv", "ctv"),
    "n_prompt": ("-p", "p"),
    "n_gen": ("-n", "n"),
    "n_depth": ("-d", "d"),
    "repetitions": ("-r", "r"),
}

# Axes added after cells were first measured, with their default: spelled in a cell's id, kept in its
# parameters and passed to llama-bench only when not at the default, so adding one renamed no cell.
OPTIONAL_AXES: dict[str, Any] = {"no_op_offload": 0}


# Figure name -> (x axis, axis that splits lines or None, log-scaled x). Batch and
# ubatch are swept together (ubatch is capped at batch), so the batch figure draws
# one line per ubatch size. Kept here, not in figures.py, so the Snakefile can read
# it without importing matplotlib.
FIGURES: dict[str, tuple[str, str | None, bool]] = {
    "threads": ("threads", None, False),
    "batch": ("batch_size", "ubatch_size", True),
    "gpu_layers": ("n_gpu_layers", None, False),
}


# Figures of the serving cells (figures.py draws them; named here for the Snakefile).
SERVING_FIGURES = ("serving_ttft", "serving_latency")
# Figures of the RPC cells, likewise.
RPC_FIGURES = ("rpc",)


def spell(partial: dict[str, Any]) -> dict[str, Any]:
    """YAML reads a bare ``on``/``off`` as a boolean: spell flash_attn out, wherever it is given."""
    value = partial.get("flash_attn")
    if isinstance(value, bool):
        return {**partial, "flash_attn": "on" if value else "off"}
    return partial


def normalize(params: dict[str, Any]) -> dict[str, Any]:
    """Every axis, in id order (params are compared by repr), flash_attn spelled out; an optional axis
    only where it differs from its default."""
    return spell({axis: params[axis] for axis in AXES if not at_default(params, axis)})


def at_default(params: dict[str, Any], axis: str) -> bool:
    """Whether ``axis`` is an optional axis that ``params`` leaves at (or does not give beyond) its default."""
    return axis in OPTIONAL_AXES and params.get(axis, OPTIONAL_AXES[axis]) == OPTIONAL_AXES[axis]


def value(params: dict[str, Any], axis: str) -> Any:
    """An axis's value in a cell's parameters, an optional axis's default where they leave it out."""
    return params.get(axis, OPTIONAL_AXES.get(axis))


def text(axis: str, value: Any) -> str:
    """An axis value as text, for comparing values read back from tables: whole numbers without the ``.0``
    a CSV column with gaps gives them, an optional axis's default where a row predates the axis."""
    if axis in OPTIONAL_AXES and (value is None or value != value):  # None or NaN
        value = OPTIONAL_AXES[axis]
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def gpu_layers(requested: int | str, model_layers: int) -> int:
    """``n_gpu_layers`` as llama-bench takes it: ``all`` is every repeating layer plus the output layer
    (block count + 1, read from the model, not guessed), ``50%`` that share of them, rounded."""
    if requested == "all":
        return model_layers + 1
    if isinstance(requested, str) and requested.endswith("%"):
        return round(float(requested[:-1]) / 100 * (model_layers + 1))
    return int(requested)


def for_model(params: dict[str, Any], model_layers: int | None) -> dict[str, Any]:
    """The cell's parameters as run on one model: ``n_gpu_layers`` resolved (``all``, ``N%``) for its layers."""
    requested = params["n_gpu_layers"]
    if isinstance(requested, int):
        return dict(params)
    if not model_layers:
        raise Unsupported(f"n_gpu_layers: {requested} needs the model's block count, which its GGUF does not give")
    return {**params, "n_gpu_layers": gpu_layers(requested, model_layers)}


def placement(params: dict[str, Any], model_layers: int | None, offload: bool) -> dict[str, Any]:
    """Where a run's layers went, as llama.cpp places them: ``n_gpu_layers`` of the block count + 1 layers
    (repeating layers and the output layer; which of them first differs between versions) go to the GPU or
    RPC devices (``offload``: the run has some), the rest stay on the CPU; -1 leaves it to llama.cpp.
    ``op_offload``: whether large prompt matrix products still go to the GPU from layers kept on the CPU
    (llama.cpp's default); ``no_op_offload: 1`` with ``n_gpu_layers: 0`` is a GPU build's true CPU baseline."""
    requested = params["n_gpu_layers"]
    n_gpu = gpu_layers(requested, model_layers) if model_layers else requested
    fact = {"requested": requested, "n_gpu_layers": n_gpu, "model_layers": model_layers, "offloaded_layers": None,
            "cpu_layers": None, "op_offload": offload and not value(params, "no_op_offload")}
    if model_layers is None or not isinstance(n_gpu, int) or n_gpu < 0:
        return fact
    total = model_layers + 1
    offloaded = min(n_gpu, total) if offload else 0
    return {**fact, "offloaded_layers": offloaded, "cpu_layers": total - offloaded}


# The cell key beyond the parameters, in id order: what later kinds of cell add
# (the RPC topology and the devices it uses, the measurement round). A component
# left at None is not spelled, so adding a component to the scheme never renames
# an existing cell: its results stay where they are and are never measured again.
# The source and the platform are not here: they belong to the build (a version
# kept in results/history/<build>@<commit>, a platform's build <build>+<platform>).
KEY_COMPONENTS = ("topology", "devices", "round")


def cell_id(params: dict[str, Any], labels: dict[str, str] | None = None, **components: Any) -> str:
    """E.g. ``t2_b2048_ub512_ngl99_fa-auto_ctk-f16_ctv-f16_p128_n32_d0_r3``, then ``_round-2`` and the like.

    ``labels`` maps each axis to its short label, in id order: the benchmark axes by default.
    """
    unknown = set(components) - set(KEY_COMPONENTS)
    if unknown:
        raise ValueError(f"unknown cell key components {sorted(unknown)}")
    labels = labels or {axis: label for axis, (_, label) in AXES.items()}
    parts = [_label(label, params[axis]) for axis, label in labels.items() if not at_default(params, axis)]
    parts += [_label(f"{name}-", components[name]) for name in KEY_COMPONENTS if components.get(name) is not None]
    return "_".join(parts)


def _label(label: str, value: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9.+]", "-", str(value).replace("%", "pct"))
    return f"{label}{text}" if isinstance(value, int) or label.endswith("-") else f"{label}-{text}"


def llama_bench_args(params: dict[str, Any], help_text: str = "") -> list[str]:
    """The cell's parameters as llama-bench flags, every axis explicit, spelled for this llama-bench.

    ``help_text`` is the tool's ``--help``: trees before late 2025 take ``-fa`` as 0/1 only,
    so on/off are translated and ``auto``, which they cannot express, raises Unsupported; an
    optional axis is passed only when set, and raises Unsupported where the tool lacks its flag.
    """
    params = dict(params)
    for axis in OPTIONAL_AXES:
        flag = AXES[axis][0]
        if not at_default(params, axis) and help_text and f"{flag}," not in help_text:
            raise Unsupported(f"this llama-bench has no {flag} ({axis}): leave {axis} at its default "
                              "to measure this cell on it")
    if "--flash-attn <0|1>" in help_text:
        fa = params["flash_attn"]
        if fa == "auto":
            raise Unsupported("this llama-bench takes -fa 0/1 only (no auto): set flash_attn to on or off "
                              "to measure this cell on it")
        params["flash_attn"] = 1 if fa in ("on", 1, True) else 0
    args = []
    for axis, (flag, _) in AXES.items():
        if not at_default(params, axis):
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


# Serving cell axes -> short label, in id order: the server's parameters, then the load.
SERVING_AXES: dict[str, str] = {
    "threads": "t",
    "batch_size": "b",
    "ubatch_size": "ub",
    "n_gpu_layers": "ngl",
    "flash_attn": "fa",
    "ctx_size": "c",
    "parallel": "np",
    "prompt_tokens": "pt",
    "max_tokens": "mt",
    "concurrency": "cc",
    "requests": "rq",
    "cache": "cache",
}


def serving_cells(serving: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every serving cell of one (build, model): {cell id: parameters}; scenarios cross their own axes."""
    base = spell(dict(serving["defaults"]))
    cells = {}
    for scenario in serving["scenarios"].values():
        for combo in itertools.product(*scenario.values()):
            params = spell({**base, **dict(zip(scenario, combo))})
            params = {axis: params[axis] for axis in SERVING_AXES}
            cells[cell_id(params, SERVING_AXES)] = params
    return cells


def expand_serving(serving: dict[str, Any], builds: list[str], models: list[str],
                   ) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every serving cell of every served (build, model) pair, keyed by (build, model, cell id)."""
    pairs = itertools.product(serving["builds"] or builds, serving["models"] or models)
    cells = serving_cells(serving)
    return {(build, model, cid): params for build, model in pairs for cid, params in cells.items()}


def bench_partner(serving_params: dict[str, Any], bench: dict[str, Any]) -> dict[str, Any]:
    """The llama-bench cell that measures a serving cell's settings and workload: its estimate's source."""
    shared = {axis: serving_params[axis] for axis in ("threads", "batch_size", "ubatch_size", "n_gpu_layers",
                                                      "flash_attn")}
    return normalize({**baseline(bench), **shared, "n_prompt": serving_params["prompt_tokens"],
                      "n_gen": serving_params["max_tokens"], "n_depth": 0})


def all_cells(config: dict[str, Any]) -> tuple[dict[tuple[str, str, str], dict[str, Any]],
                                               dict[tuple[str, str, str], dict[str, Any]]]:
    """The run's benchmark cells (the matrix plus every serving cell's partner) and its serving cells."""
    builds, models = list(config["builds"]), list(config["models"])
    bench = config["benchmark"]
    cells = expand(bench, builds, models)
    serving = expand_serving(config["serving"], builds, models)
    for (build, model, _), params in serving.items():
        partner = bench_partner(params, bench)
        cells[(build, model, cell_id(partner))] = partner
    return cells, serving


def expand_rpc(config: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every RPC cell, keyed by (client build, model, cell id): {"params": matrix cell, "rpc": how it is run}.

    Each cell runs once per link rate and device selection of its topology, and
    once with ``-dev none``: the client alone on its local CPU, the single-node
    partner of the others. The cell id is the matrix id with the topology (and
    rate) and the device selection as key components.
    """
    bench, rpc = config["benchmark"], config["rpc"]
    base = baseline(bench)
    cells = {}
    for name, topology in rpc["topologies"].items():
        for model in rpc["models"] or list(config["models"]):
            for partial in rpc["cells"]:
                params = normalize(spell({**base, **partial}))
                for rate in topology["link_rates"]:
                    for devices in [*topology["devices"], "none"]:
                        label = name if rate == "unlimited" else f"{name}-{rate}"
                        cid = cell_id(params, topology=label, devices=devices.replace("/", "+"))
                        cells[(topology["client"], model, cid)] = {"params": params, "rpc": {
                            "topology": name, "link_rate": rate, "devices": devices,
                            "workers": topology["workers"]}}
    return cells


def with_rounds(cells: dict[tuple[str, str, str], dict[str, Any]], rounds: int,
                ) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Each cell once per measurement round: {key: {"params", "round", "base"}}, round 1 keeping the plain id.

    A round is a key component, so adding a round adds files and renames none.
    """
    return {
        (build, model, cell_id(params, round=r if r > 1 else None)): {"params": params, "round": r, "base": cid}
        for (build, model, cid), params in cells.items()
        for r in range(1, rounds + 1)
    }


def round_order(bases: list[tuple[str, str, str]], round_: int, seed: int) -> list[tuple[str, str, str]]:
    """The order in which round ``round_`` measures the run's cells: a shuffle seeded by (seed, round).

    Every round shuffles anew, so slow drift of the machine spreads over all cells
    instead of landing on the same few.
    """
    order = sorted(bases)
    random.Random(f"{seed}:{round_}").shuffle(order)
    return order

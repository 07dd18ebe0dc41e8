"""The plan: every job a run does, computed once from the validated config, and never again.

:func:`make` is pure: the same config gives the same plan, whatever produced the
config (``config.yaml``, ``--configfile``, ``--config``, key order, defaults written
or left out: core/configuration.py makes it canonical). The Snakefile layer asks
the plan for its input functions and lookups; a job asks it (:func:`of`, from the
config Snakemake hands the job) for the bookkeeping that must not rerun anything
when it changes - its place in the round's shuffled order, the seed, its timeout -
and records them. What changes a measurement reaches the job as a param instead.

The plan is static plus functions of checkpoint outputs: :meth:`Plan.extra_rounds`
turns the cells a checkpoint chose into the cells (and paths) to measure next, so
dynamic work extends the plan instead of bypassing it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from llamabench.core import axes, layout, matrix, options, platforms

# Sources, builds and models come before every cell (a cell's priority is at most a few million): then
# round 1 of every cell of every build runs before round 2 of any. A priority, not an input, so adding a
# build or a source never reruns the cells of the others.
PREPARE_PRIORITY = 1_000_000_000
ROUND_PRIORITY = 1_000_000
SERVING_FIGURES = ("serving_ttft", "serving_latency")
RPC_FIGURES = ("rpc",)

Key = tuple[str, str, str]  # (build, model, cell id)


def freeze(value: Any) -> Any:
    """An immutable copy: mappings (in their order) and tuples all the way down."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """Plain dicts and lists again, in the same order: what a rule's params and a job's script take."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value


@dataclass(frozen=True)
class Build:
    """A build instance: a configured build, or on a cluster one of them on one platform."""

    name: str
    source: str
    cmake_options: tuple[str, ...]
    platform: str

    @property
    def cuda(self) -> bool:
        return options.enabled(list(self.cmake_options), "GGML_CUDA")


@dataclass(frozen=True)
class Cell:
    """One job's measurement: a benchmark, serving or RPC cell in one round."""

    kind: str  # bench_cell, serve_cell or rpc_cell: its rule and record kind
    build: str
    model: str
    id: str
    base: str  # the id without the round: the same cell in every round
    round: int
    params: Mapping[str, Any]
    setup: Mapping[str, Any] | None = None  # an RPC cell: topology, link rate, devices, workers
    partner: Key | None = None  # read beside it: a serving cell's llama-bench cell, an RPC cell's -dev none cell
    position: int | None = None  # its place (from 1) in its round's seeded order
    priority: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", freeze(self.params))
        object.__setattr__(self, "setup", freeze(self.setup))

    @property
    def key(self) -> Key:
        return (self.build, self.model, self.id)

    @property
    def path(self) -> str:
        return layout.path(self.kind, build=self.build, model=self.model, cell=self.id)


@dataclass(frozen=True)
class Plan:
    config: Mapping[str, Any]
    cluster: bool
    sources: Mapping[str, Mapping[str, Any]]
    platforms: Mapping[str, Mapping[str, Any]]
    builds: Mapping[str, Build]
    models: Mapping[str, Mapping[str, Any]]  # a synthetic model's ``build`` is its quantiser's instance
    smoke: Mapping[str, Any]  # what a smoke run does (its timeout is bookkeeping)
    topologies: Mapping[str, Mapping[str, Any]]  # by instance name on a cluster
    bench: Mapping[Key, Cell]  # every round a cell may get, the extra ones included
    serving: Mapping[Key, Cell]
    rpc: Mapping[Key, Cell]
    comparisons: Mapping[str, Mapping[str, Any]]
    benchmark: Mapping[str, Any]  # the benchmark section: what statistics over the cells need
    defaults_cell: str  # the base id every speed-up is relative to
    rounds: int
    last_round: int
    seed: int
    remeasure: bool
    timeouts: Mapping[str, float]
    sample_interval_s: float

    def planned(self, kind: str) -> list[Cell]:
        """The cells of ``kind`` a run measures up front (benchmark cells: their configured rounds)."""
        cells = {"bench_cell": self.bench, "serve_cell": self.serving, "rpc_cell": self.rpc}[kind]
        return [cell for cell in cells.values() if cell.round <= self.rounds]

    def cell(self, kind: str, build: str, model: str, cell: str) -> Cell:
        return {"bench_cell": self.bench, "serve_cell": self.serving, "rpc_cell": self.rpc}[kind][(build, model, cell)]

    def extra_rounds(self, chosen: Iterable[Key]) -> list[Cell]:
        """The rounds after the configured ones, up to ``remeasure.max_rounds``, of the base cells a checkpoint
        chose (build, model, base id): a function of its output, so the plan stays the only source of cells."""
        bases = {(c.build, c.model, c.base): c for c in self.bench.values() if c.round == 1}
        return [self.bench[(b, m, matrix.cell_id(bases[(b, m, base)].params, round=r))]
                for b, m, base in sorted(set(chosen)) for r in range(self.rounds + 1, self.last_round + 1)]

    @property
    def figures(self) -> list[str]:
        return [*axes.FIGURES, *SERVING_FIGURES, *RPC_FIGURES, *(f"comparison_{name}" for name in self.comparisons)]

    @property
    def rpc_smokes(self) -> list[tuple[str, str]]:
        """(topology, model) of every RPC smoke run: one generation through each topology."""
        models = self.config["rpc"]["models"] or list(self.models)
        return [(topology, model) for topology in self.topologies for model in models]

    def platform_of(self, build: str | None) -> str:
        """The platform a build instance runs on (the first one for jobs that name no build)."""
        return self.builds[build].platform if build else next(iter(self.platforms))


_PLANS: dict[str, Plan] = {}


def of(config: Mapping[str, Any]) -> Plan:
    """The plan of a validated config, made once per process (a job asks for its own bookkeeping here)."""
    text = json.dumps(thaw(config), sort_keys=True, default=str)
    if text not in _PLANS:
        _PLANS[text] = make(config)
    return _PLANS[text]


def make(config: Mapping[str, Any]) -> Plan:
    """Every job of a run, from the config core/configuration.py validated."""
    expanded = platforms.expand(thaw(config))
    builds = {name: Build(name, cfg["source"], tuple(cfg["cmake_options"]), cfg.get("platform")
                          or next(iter(expanded["platforms"])))
              for name, cfg in expanded["builds"].items()}
    bench, serving = expanded["benchmark"], expanded["serving"]
    models = list(expanded["models"])
    remeasure = bench["remeasure"]["enabled"]
    last_round = max(bench["rounds"], bench["remeasure"]["max_rounds"] if remeasure else 0)
    served = _serving_cells(serving, bench, list(builds), models)
    bases = _bench_bases(bench, list(builds), models, served)
    return Plan(
        config=freeze(config),
        cluster=platforms.clustered(expanded),
        sources=freeze(expanded["sources"]),
        platforms=freeze(expanded["platforms"]),
        builds=freeze(builds),
        models=freeze(expanded["models"]),
        smoke=freeze({k: v for k, v in expanded["smoke"].items() if k != "timeout"}),
        topologies=freeze(expanded["rpc"]["topologies"]),
        bench=freeze(_rounds(bases, last_round, bench["seed"])),
        serving=freeze(served),
        rpc=freeze(_rpc_cells(expanded, models)),
        comparisons=freeze(expanded["comparisons"]),
        benchmark=freeze(bench),
        defaults_cell=matrix.cell_id(matrix.baseline(bench)),
        rounds=bench["rounds"],
        last_round=last_round,
        seed=bench["seed"],
        remeasure=remeasure,
        timeouts=freeze({"bench_cell": bench["timeout"], "serve_cell": serving["timeout"],
                         "rpc_cell": expanded["rpc"]["timeout"], "smoke": expanded["smoke"]["timeout"],
                         "rpc_smoke": expanded["smoke"]["timeout"]}),
        sample_interval_s=bench["sample_interval_ms"] / 1000,
    )


def _serving_cells(serving: dict[str, Any], bench: dict[str, Any], builds: list[str], models: list[str],
                   ) -> dict[Key, Cell]:
    """Every serving cell of every served (build, model), with its llama-bench partner."""
    cells = {}
    for build, model in itertools.product(serving["builds"] or builds, serving["models"] or models):
        for cid, params in matrix.serving_cells(serving).items():
            partner = (build, model, matrix.cell_id(matrix.bench_partner(params, bench)))
            cells[(build, model, cid)] = Cell("serve_cell", build, model, cid, cid, 1, params, partner=partner)
    return cells


def _bench_bases(bench: dict[str, Any], builds: list[str], models: list[str], served: dict[Key, Cell],
                 ) -> dict[Key, dict[str, Any]]:
    """The matrix of every benchmarked (build, model), plus every serving cell's partner: {key: params}."""
    bases = {(build, model, cid): params
             for build, model in itertools.product(bench["builds"] or builds, bench["models"] or models)
             for cid, params in matrix.bench_cells(bench, build).items()}
    for cell in served.values():
        partner = matrix.bench_partner(cell.params, bench)
        bases[cell.partner] = partner
    return bases


def _rounds(bases: dict[Key, dict[str, Any]], last_round: int, seed: int) -> dict[Key, Cell]:
    """Each base cell once per round (round 1 keeps the plain id: a round is a key component, so adding one
    adds files and renames none), placed in its round's seeded order: round r before round r+1."""
    cells = {}
    for round_ in range(1, last_round + 1):
        order = matrix.round_order(list(bases), round_, seed)
        for index, (build, model, base) in enumerate(order):
            params = bases[(build, model, base)]
            cid = matrix.cell_id(params, round=round_ if round_ > 1 else None)
            cells[(build, model, cid)] = Cell("bench_cell", build, model, cid, base, round_, params,
                                              position=index + 1,
                                              priority=(last_round - round_ + 1) * ROUND_PRIORITY - index)
    return cells


def _rpc_cells(config: dict[str, Any], models: list[str]) -> dict[Key, Cell]:
    """Every RPC cell, keyed by (client build, model, id), each with its ``-dev none`` partner."""
    rpc, bench = config["rpc"], config["benchmark"]
    cells = {}
    for name, topology in rpc["topologies"].items():
        client = topology["client"]
        for model in rpc["models"] or models:
            found = matrix.rpc_cells(bench, name, topology, rpc["cells"])
            for cid, cell in found.items():
                partner = next(other for other, c in found.items() if c["devices"] == "none"
                               and c["link_rate"] == cell["link_rate"] and c["params"] == cell["params"])
                setup = {"devices": cell["devices"], "link_rate": cell["link_rate"], "topology": name,
                         "workers": topology["workers"]}
                cells[(client, model, cid)] = Cell("rpc_cell", client, model, cid, cid, 1, cell["params"], setup,
                                                   partner=(client, model, partner))
    return cells


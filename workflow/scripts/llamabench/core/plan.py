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
dynamic work extends the plan instead of bypassing it; core/chains.py walks the
checkpoints' chains (tuning rounds, load pilots, bisect steps, history ranges)
into the files each rule's input names.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from llamabench.core import axes, backends, bisect, layout, load, matrix, platforms, quality, tuning

# Sources, builds and models come before every cell (a cell's priority is at most a few million): then
# round 1 of every cell of every build runs before round 2 of any. A priority, not an input, so adding a
# build or a source never reruns the cells of the others.
PREPARE_PRIORITY = 1_000_000_000
# A tuning study's decision (seconds of work) is taken as soon as its round is measured: it unblocks the next.
DECISION_PRIORITY = PREPARE_PRIORITY
ROUND_PRIORITY = 1_000_000
SETUP_PAD_BYTES = 4096  # a page: every stack alignment a pad can give
SERVING_FIGURES = ("serving_ttft", "serving_latency", "serving_turns")
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
    visible_devices: str | None = None  # the GPU devices its processes see (its backend's variable)
    software_device: bool = False  # opted in to a software GPU (lavapipe): a functional check

    @property
    def backend(self) -> backends.Backend | None:
        return backends.of(self.cmake_options)

    @property
    def cuda(self) -> bool:
        return self.backend is backends.BACKENDS["cuda"]

    @property
    def environment(self) -> dict[str, str]:
        """The variables its processes run with (core/backends.py)."""
        return backends.environment(self.backend, self.visible_devices)


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
    # (kind, base id) of the cells of its build and model it is compared with
    compared: tuple[tuple[str, str], ...] = ()
    study: str | None = None  # a tuning study's candidate cell (results/tune/<study>/cells/), or a load sweep's
    study_kind: str = "tune"  # tune, load, bisect or history: which kind of study ``study`` names (for the last
    # two, ``build`` is the commit measured)
    probe: int | None = None  # a bisect's cell: the probe (step of the search) it was measured for

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", freeze(self.params))
        object.__setattr__(self, "setup", freeze(self.setup))

    @property
    def key(self) -> Key:
        return (self.build, self.model, self.id)

    @property
    def path(self) -> str:
        if self.study_kind == bisect.BISECT:
            return layout.path("bisect_cell", study=self.study, probe=self.probe, commit=self.build, model=self.model,
                               cell=self.id)
        if self.study_kind == bisect.HISTORY:
            return layout.path("history_cell", study=self.study, commit=self.build, model=self.model, cell=self.id)
        if self.study and self.study_kind == "load":
            return layout.path("load_cell", sweep=self.study, build=self.build, model=self.model, cell=self.id)
        if self.study:
            return layout.path(TUNE_KINDS[self.kind], study=self.study, build=self.build, model=self.model,
                               cell=self.id)
        return layout.path(self.kind, build=self.build, model=self.model, cell=self.id)

    def setup_pad(self, seed: int) -> int:
        """Bytes of padding in its processes' environment (measure/processes.py ``randomize_setup``), drawn from
        the seed and its path: anew in every round, and independently for two cells compared in one round.
        Bookkeeping, like its place in the round: changing the seed reruns nothing."""
        return random.Random(f"{seed}:{self.path}").randrange(SETUP_PAD_BYTES)


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
    serving_defaults_cell: str  # the serving cell every serving setting is compared with
    rounds: int
    last_round: int
    seed: int
    remeasure: bool
    timeouts: Mapping[str, float]
    sample_interval_s: float
    memory: Mapping[str, Any]  # the fit decision's limits (bookkeeping: a job reads them here)
    studies: Mapping[str, tuning.Study]  # tuning studies: their candidates (which rounds get which: derive/race.py)
    sweeps: Mapping[str, load.Sweep]  # load sweeps: their fixed settings (their levels: the pilots' or the config's)
    bisects: Mapping[str, bisect.Study]  # bisect studies (which commits they probe: their checkpoints)
    histories: Mapping[str, bisect.Study]  # history studies (their commits: their range checkpoint)
    quality: Mapping[Key, quality.Cell]  # quality cells and their references (core/quality.py)
    quality_spec: Mapping[str, Any]  # the quality section: what llama-perplexity runs with

    def quality_cell(self, build: str, model: str, cell: str = quality.REFERENCE) -> quality.Cell:
        return self.quality[(build, model, cell)]

    def candidate_quality(self, study: str, build: str, model: str) -> dict[str, quality.Cell]:
        """A study's candidates -> the quality cells of their settings, where they differ from the reference's
        (the quality budget's evidence; the others cost nothing)."""
        found = {}
        for candidate in self.studies[study].candidates:
            spec = self.models[model]
            cid = quality.cell_id(candidate.params, self.benchmark, self.builds[build].backend is not None,
                                  spec["kind"] == "quantized" or "quality_reference" in spec)
            if cid != quality.REFERENCE:
                found[candidate.id] = self.quality[(build, model, cid)]
        return found

    @property
    def quality_text_source(self) -> str | None:
        """The source whose docs make the default text: the first quality build's (by name). None: the user
        named a text, or nothing measures quality."""
        if self.quality_spec["text"] is not None or not self.quality:
            return None
        return self.builds[min(build for build, _, _ in self.quality)].source

    def cells(self, kind: str) -> Mapping[Key, Cell]:
        """Every cell of ``kind`` (bench_cell, serve_cell, rpc_cell) in every round it may get."""
        return {"bench_cell": self.bench, "serve_cell": self.serving, "rpc_cell": self.rpc}[kind]

    def planned(self, kind: str) -> list[Cell]:
        """The cells of ``kind`` a run measures up front: their configured rounds."""
        return [cell for cell in self.cells(kind).values() if cell.round <= self.rounds]

    def cell(self, kind: str, build: str, model: str, cell: str) -> Cell:
        return self.cells(kind)[(build, model, cell)]

    def cell_of(self, rule: str, wildcards: Mapping[str, str]) -> Cell:
        """The cell a job of a cell rule measures, by the rule's name (its output's layout key) and the job's
        wildcards: one lookup for the rule's priority, threads and params and for the job itself, whichever variant
        of a program's rule (workflow/rules/bench_cell.smk, serve_cell.smk) it is."""
        w = wildcards
        match rule:
            case "bench_cell" | "serve_cell" | "rpc_cell":
                return self.cell(rule, w["build"], w["model"], w["cell"])
            case "tune_cell" | "tune_serve_cell":
                return self.tune_cell(w["study"], w["build"], w["model"], w["cell"])
            case "load_cell":
                return self.load_cell(w["sweep"], w["build"], w["model"], w["cell"])
            case "history_cell":
                return self.commit_cell(bisect.HISTORY, w["study"], w["commit"], w["model"], w["cell"])
            case "bisect_cell":
                return self.commit_cell(bisect.BISECT, w["study"], w["commit"], w["model"], w["cell"], int(w["probe"]))
        raise KeyError(f"{rule} is no cell rule")

    def memory_settings(self, cell: Cell) -> Mapping[str, Any]:
        """The fit decision's settings for ``cell``: a tuning study's candidate is held to the study's
        ``memory_limit_mib`` too (a constraint: a candidate predicted to need more is not started, and the study
        drops it with that reason)."""
        if cell.study and cell.study_kind == "tune":
            return tuning.memory_settings(self.memory, self.studies[cell.study])
        return self.memory

    def serving_partners(self) -> dict[str, str]:
        """Each serving cell's file (every round it may get) -> its llama-bench partner's file of the same round:
        the serving summary reads the estimate beside the measurement."""
        return {cell.path: self.bench[cell.partner].path for cell in self.serving.values()}

    def tune_cell(self, study: str, build: str, model: str, cell: str) -> Cell:
        """One round of one candidate of a study: its place in the round is a seeded shuffle of every candidate of
        the study, so whichever the round measures run in a random order."""
        found = self.studies[study]
        base, round_ = tuning.split(cell)
        candidate = found.by_id[base]
        position = found.position(base, round_, self.seed)
        # Round r of a study beside round r of the grid, so the two share the machine's drift.
        priority = max(1, self.last_round - round_ + 1) * ROUND_PRIORITY - position
        kind = "serve_cell" if found.kind == axes.SERVING else "bench_cell"
        return Cell(kind, build, model, cell, base, round_, candidate.params, position=position,
                    priority=priority, study=study)

    def tune_cells(self, study: str, build: str, model: str, chosen: Iterable[tuple[str, int]]) -> list[Cell]:
        """The cells of (candidate, round) pairs a study's decisions chose."""
        return [self.tune_cell(study, build, model, tuning.cell_id(c, r)) for c, r in chosen]

    def load_cell(self, sweep: str, build: str, model: str, cell: str) -> Cell:
        """One round of one level of a load sweep. Its priority puts round r beside the grid's round r, and the
        levels of a round in a seeded random order (a key of the level, so it needs no list of the levels)."""
        found = self.sweeps[sweep]
        base, round_ = tuning.split(cell)
        rate = load.rate_of(base)
        order = random.Random(f"{self.seed}:{sweep}:{rate}:{round_}").randrange(1000)
        priority = max(1, self.last_round - round_ + 1) * ROUND_PRIORITY - 1 - order
        return Cell("serve_cell", build, model, cell, base, round_, found.level(rate), priority=priority,
                    study=sweep, study_kind="load")

    def load_cells(self, sweep: str, model: str, rates: Iterable[float]) -> list[Cell]:
        """Every cell of a sweep's levels at ``rates``: each build, each configured round."""
        found = self.sweeps[sweep]
        return [self.load_cell(sweep, build, model, found.cell_id(rate, round_))
                for build in found.builds for rate in sorted(set(rates)) for round_ in range(1, self.rounds + 1)]

    def commit_study(self, kind: str, study: str) -> bisect.Study:
        """A bisect (``kind`` bisect) or history study by its name."""
        return (self.bisects if kind == bisect.BISECT else self.histories)[study]

    def commit_cell(self, kind: str, study: str, commit: str, model: str, cell: str, probe: int | None = None,
                    ) -> Cell:
        """One round of one cell of a bisect or history study on one commit. Its priority puts round r of a
        measurement before round r + 1, and the commits of a round in a seeded random order (a key of the commit:
        the plan does not know which commits a checkpoint will choose)."""
        found = self.commit_study(kind, study)
        base, round_ = tuning.split(cell)
        order = random.Random(f"{self.seed}:{kind}:{study}:{probe}:{commit}:{round_}").randrange(1000)
        return Cell("bench_cell", commit, model, cell, base, round_, found.params(base, self.grid_params),
                    priority=ROUND_PRIORITY * max(1, 100 - round_) - order, study=study, study_kind=kind, probe=probe)

    def commit_cells(self, kind: str, study: str, commits: Iterable[str], bases: Iterable[str], rounds: Iterable[int],
                     probe: int | None = None) -> list[Cell]:
        """Every cell of ``commits`` x the study's models x ``bases`` x ``rounds``."""
        found = self.commit_study(kind, study)
        return [self.commit_cell(kind, study, commit, model, tuning.cell_id(base, r), probe)
                for r in rounds for commit in commits for model in found.models for base in bases]

    @functools.cached_property
    def grid_params(self) -> dict[str, Mapping[str, Any]]:
        """Each benchmark cell id of the grid -> its parameters (a bisect of a comparison's regressed cells)."""
        return {cell.base: cell.params for cell in self.bench.values()}

    def load_pairs(self) -> list[tuple[str, str, str]]:
        """(sweep, build, model) of every pilot a run may hold."""
        return [(name, build, model) for name, found in self.sweeps.items()
                for build, model in itertools.product(found.builds, found.models)]

    def tune_pairs(self) -> list[tuple[str, str, str]]:
        """(study, build, model) of every race a run holds."""
        return [(name, build, model) for name, found in self.studies.items()
                for build, model in itertools.product(found.builds, found.models)]

    def extra_rounds(self, chosen: Iterable[tuple[str, str, str, str, int]]) -> list[Cell]:
        """The cells a re-measure decision asks for: for each chosen (kind, build, model, base id, last round),
        the rounds after the configured ones up to that last round, of that cell and of every cell it is
        compared with (its defaults cell, its partner), so the extra rounds pair. A function of the checkpoint's
        output: the plan stays the only source of cells."""
        every = [cell for kind in KINDS for cell in self.cells(kind).values()]
        firsts = {(c.kind, c.build, c.model, c.base): c for c in every if c.round == 1}
        rounds = {(c.kind, c.build, c.model, c.base, c.round): c for c in every}
        wanted: dict[tuple[str, str, str, str], int] = {}
        for kind, build, model, base, last in chosen:
            for other_kind, other in [(kind, base), *firsts[(kind, build, model, base)].compared]:
                if (key := (other_kind, build, model, other)) in firsts:
                    wanted[key] = max(wanted.get(key, 0), last)
        return [rounds[(*key, r)] for key, last in sorted(wanted.items()) for r in range(self.rounds + 1, last + 1)]

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
                          or next(iter(expanded["platforms"])), cfg.get("visible_devices"),
                          cfg.get("software_device", False))
              for name, cfg in expanded["builds"].items()}
    bench, serving = expanded["benchmark"], expanded["serving"]
    models = list(expanded["models"])
    bases = [*_bench_bases(bench, list(builds), models), *_serving_bases(serving, bench, list(builds), models),
             *_rpc_bases(expanded, models)]
    bases += [_bench_base(bench, b.build, b.model, b.partner[1], b.partner_params)
              for b in bases if b.kind == "serve_cell"]
    cells = _rounds(bases, last_round(bench), bench["seed"])
    by_kind = {kind: {key[1:]: cell for key, cell in cells.items() if key[0] == kind} for kind in KINDS}
    studies = {name: tuning.study(name, spec, expanded, list(builds), models)
               for name, spec in expanded["tune"].items()}
    return Plan(
        config=freeze(config),
        cluster=platforms.clustered(expanded),
        sources=freeze(expanded["sources"]),
        platforms=freeze(expanded["platforms"]),
        builds=freeze(builds),
        models=freeze(expanded["models"]),
        smoke=freeze({k: v for k, v in expanded["smoke"].items() if k != "timeout"}),
        topologies=freeze(expanded["rpc"]["topologies"]),
        bench=freeze(by_kind["bench_cell"]),
        serving=freeze(by_kind["serve_cell"]),
        rpc=freeze(by_kind["rpc_cell"]),
        comparisons=freeze(expanded["comparisons"]),
        benchmark=freeze(bench),
        defaults_cell=matrix.cell_id(matrix.baseline(bench)),
        serving_defaults_cell=matrix.serving_defaults_id(serving),
        rounds=bench["rounds"],
        last_round=last_round(bench),
        seed=bench["seed"],
        remeasure=remeasures(bench),
        timeouts=freeze({"bench_cell": bench["timeout"], "serve_cell": serving["timeout"],
                         "rpc_cell": expanded["rpc"]["timeout"], "smoke": expanded["smoke"]["timeout"],
                         "rpc_smoke": expanded["smoke"]["timeout"]}),
        sample_interval_s=bench["sample_interval_ms"] / 1000,
        memory=freeze(expanded["memory"]),
        studies=freeze(studies),
        sweeps=freeze({name: load.sweep(name, spec, expanded, list(builds), models)
                       for name, spec in expanded["load"].items()}),
        bisects=freeze({name: bisect.study(name, bisect.BISECT, spec, expanded)
                        for name, spec in expanded["bisect"].items()}),
        histories=freeze({name: bisect.study(name, bisect.HISTORY, spec, expanded)
                          for name, spec in expanded["history"].items()}),
        quality=freeze(_quality_cells(expanded, by_kind["bench_cell"], studies)),
        quality_spec=freeze(expanded["quality"]),
    )


KINDS = ("bench_cell", "serve_cell", "rpc_cell")
# A tuning candidate's cell kind -> its path in the layout (and the rule that measures it).
TUNE_KINDS = {"bench_cell": "tune_cell", "serve_cell": "tune_serve_cell"}
# How each kind's ids spell its parameters.
ID_KIND = {"bench_cell": axes.BENCHMARK, "serve_cell": axes.SERVING, "rpc_cell": axes.BENCHMARK}


def _quality_cells(config: dict[str, Any], bench: Mapping[Key, Cell], studies: Mapping[str, tuning.Study],
                   ) -> dict[Key, quality.Cell]:
    """The quality cells of the grid's and the tuning studies' settings (core/quality.py)."""
    grids: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for cell in bench.values():
        grids.setdefault((cell.build, cell.model), {})[cell.base] = cell.params
    candidates = [(build, model, candidate.params, bool(quality.budget(found.settings))) for found in studies.values()
                  for build, model in itertools.product(found.builds, found.models) for candidate in found.candidates]
    return quality.cells(config, grids, candidates)


def remeasures(bench: Mapping[str, Any]) -> bool:
    """Whether the re-measure checkpoint runs: for noisy cells (remeasure.enabled) or disturbed ones."""
    return bench["remeasure"]["enabled"] or bench["disturbance"]["action"] == "remeasure"


def last_round(bench: Mapping[str, Any]) -> int:
    """The last round any cell may get: the configured ones, then extra rounds for noisy cells (up to
    remeasure.max_rounds) or one for a disturbed round."""
    extra = [bench["remeasure"]["max_rounds"]] if bench["remeasure"]["enabled"] else []
    extra += [bench["rounds"] + 1] if bench["disturbance"]["action"] == "remeasure" else []
    return max([bench["rounds"], *extra])


@dataclass(frozen=True)
class _Base:
    """A cell before its rounds: what every round of it shares."""

    kind: str
    build: str
    model: str
    id: str
    params: Mapping[str, Any]
    setup: Mapping[str, Any] | None = None
    components: Mapping[str, str] = field(default_factory=dict)  # key components of its id (an RPC topology)
    partner: tuple[str, str] | None = None  # (kind, base id) of the cell it is read beside
    partner_params: Mapping[str, Any] | None = None
    compared: tuple[tuple[str, str], ...] = ()  # (kind, base id) of the cells it is compared with

    def cell_id(self, round_: int) -> str:
        return matrix.cell_id(self.params, ID_KIND[self.kind], **self.components,
                              round=round_ if round_ > 1 else None)


def _bench_base(bench: Mapping[str, Any], build: str, model: str, cid: str, params: Mapping[str, Any]) -> _Base:
    """A benchmark cell, compared with the defaults cell where it does the same work (a setting), with none where it
    changes the work (a prompt length is described, not compared)."""
    base = matrix.baseline(bench)
    compared = (("bench_cell", matrix.cell_id(base)),) if axes.same_workload(params, base, axes.BENCHMARK) else ()
    return _Base("bench_cell", build, model, cid, params, compared=compared)


def _bench_bases(bench: dict[str, Any], builds: list[str], models: list[str]) -> list[_Base]:
    """The matrix of every benchmarked (build, model)."""
    return [_bench_base(bench, build, model, cid, params)
            for build, model in itertools.product(bench["builds"] or builds, bench["models"] or models)
            for cid, params in matrix.bench_cells(bench, build).items()]


def _serving_bases(serving: dict[str, Any], bench: dict[str, Any], builds: list[str], models: list[str],
                   ) -> list[_Base]:
    """Every serving cell of every served (build, model), with its llama-bench partner (the estimate's source)
    and the serving defaults cell it is compared with where it does the same work."""
    cells = matrix.serving_cells(serving)
    defaults = matrix.serving_defaults_id(serving)
    found = []
    for build, model in itertools.product(serving["builds"] or builds, serving["models"] or models):
        for cid, params in cells.items():
            partner = matrix.bench_partner(params, bench)
            reference = (("serve_cell", defaults),) if axes.same_workload(params, cells[defaults], axes.SERVING) else ()
            found.append(_Base("serve_cell", build, model, cid, params, partner=("bench_cell", matrix.cell_id(partner)),
                               partner_params=partner, compared=(*reference, ("bench_cell", matrix.cell_id(partner)))))
    return found


def _rpc_bases(config: dict[str, Any], models: list[str]) -> list[_Base]:
    """Every RPC cell of every topology, with its ``-dev none`` partner."""
    rpc, bench = config["rpc"], config["benchmark"]
    found = []
    for name, topology in rpc["topologies"].items():
        for model in rpc["models"] or models:
            cells = matrix.rpc_cells(bench, name, topology, rpc["cells"])
            for cid, cell in cells.items():
                partner = next(other for other, c in cells.items() if c["devices"] == "none"
                               and c["link_rate"] == cell["link_rate"] and c["params"] == cell["params"])
                setup = {"devices": cell["devices"], "link_rate": cell["link_rate"], "topology": name,
                         "workers": topology["workers"]}
                found.append(_Base("rpc_cell", topology["client"], model, cid, cell["params"], setup,
                                   cell["components"], partner=("rpc_cell", partner),
                                   compared=(("rpc_cell", partner),)))
    return found


def _rounds(bases: list[_Base], last: int, seed: int) -> dict[tuple[str, str, str, str], Cell]:
    """Each base cell once per round (round 1 keeps the plain id: a round is a key component, so adding one
    adds files and renames none), every kind in one seeded order per round: round r before round r+1, and in a
    round benchmark, serving and RPC cells interleaved."""
    unique = {(b.kind, b.build, b.model, b.id): b for b in bases}
    cells = {}
    for round_ in range(1, last + 1):
        for index, key in enumerate(matrix.round_order(list(unique), round_, seed)):
            base = unique[key]
            partner = None
            if base.partner:
                other = unique[(base.partner[0], base.build, base.model, base.partner[1])]
                partner = (base.build, base.model, other.cell_id(round_))
            cid = base.cell_id(round_)
            cells[(base.kind, base.build, base.model, cid)] = Cell(
                base.kind, base.build, base.model, cid, base.id, round_, base.params, base.setup, partner,
                position=index + 1, priority=(last - round_ + 1) * ROUND_PRIORITY - index, compared=base.compared)
    return cells

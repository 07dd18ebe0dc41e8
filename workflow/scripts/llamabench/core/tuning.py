"""Tuning studies: the candidates of a search space, and how the plan names their cells.

A study (config ``tune.<name>``) crosses its ``space`` (value lists or ranges)
and adds its named ``candidates``, each over ``benchmark.defaults`` (a llama-bench
objective) or ``serving.defaults`` (a served one: TTFT, throughput) with the
study's ``workload``; combinations that cannot run or that repeat another are
left out before the study starts, with the reason, and never count as
candidates. The defaults (with the workload) are always a candidate: the
reference of the winner's speed-up.

A candidate's cells live under ``results/tune/<study>/cells/`` (``serving/``), so a study never
borrows a grid's measurements, and a named candidate's id carries its name, so
two names for the same settings are two cells (a null study). Which candidates
a round measures is decided between rounds (derive/race.py); the plan only
knows every cell a study may get.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llamabench.core import axes, backends, matrix, options

MAX_SPACE = 100_000  # combinations a space may cross (each a candidate the plan can name)
SERVED = ("ttft", "throughput")  # objectives measured by serving cells


@dataclass(frozen=True)
class Candidate:
    id: str  # its cells' id without the round
    label: str  # what differs from the defaults, readable: "threads=1, batch_size=256"; "defaults"
    params: Mapping[str, Any]
    name: str | None = None  # a named candidate's name
    in_space: bool = True  # a point of the space's grid (coordinate descent moves among these only)


@dataclass(frozen=True)
class Study:
    name: str
    kind: str  # the axes' kind of its candidates: benchmark (llama-bench cells) or serving (llama-server cells)
    builds: tuple[str, ...]
    models: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    reference: str  # the defaults candidate's id
    axes: tuple[str, ...]  # the axes the space varies, in registry order (coordinate descent's order)
    excluded: tuple[tuple[str, str], ...]  # (label, why) of each combination left out
    settings: Mapping[str, Any]  # objective, workload, budget, delta, alpha, race_rounds, min_rounds, ...

    @functools.cached_property
    def by_id(self) -> dict[str, Candidate]:
        return {c.id: c for c in self.candidates}

    @functools.cached_property
    def _positions(self) -> dict[tuple[int, int], dict[str, int]]:
        return {}

    def position(self, candidate: str, round_: int, seed: int) -> int:
        """Its place (from 1) in round ``round_``'s seeded shuffle of every candidate of the study (computed once
        per round: input functions ask for it for every cell)."""
        if (round_, seed) not in self._positions:
            order = matrix.round_order([c.id for c in self.candidates], round_, f"{seed}:{self.name}")
            self._positions[(round_, seed)] = {cid: i + 1 for i, cid in enumerate(order)}
        return self._positions[(round_, seed)][candidate]

    @property
    def mode(self) -> str:
        """race: every candidate at once; coordinate: one axis at a time (a space too large to enumerate)."""
        limit = min(self.settings["enumerate"], self.settings["budget"]["candidates"] or len(self.candidates))
        return "race" if len(self.candidates) <= limit else "coordinate"


def values(spec: list[Any] | Mapping[str, int]) -> list[Any]:
    """An axis's values: a list as given, a range ``{from, to, step}`` or ``{from, to, factor}`` spelled out."""
    if isinstance(spec, list):
        return [value for i, value in enumerate(spec) if value not in spec[:i]]
    found, value = [], spec["from"]
    while value <= spec["to"]:
        found.append(value)
        value = value + spec["step"] if "step" in spec else value * spec["factor"]
    return found


def kind_of(spec: Mapping[str, Any]) -> str:
    """The kind of cell a study measures: a served objective needs llama-server, the others llama-bench."""
    return axes.SERVING if spec["objective"]["metric"] in SERVED else axes.BENCHMARK


def invalid(params: Mapping[str, Any], kind: str = axes.BENCHMARK) -> str | None:
    """Why a combination is not a candidate: llama.cpp refuses it."""
    if options.flash_attn_off(params["flash_attn"]) and \
            str(axes.value(params, "cache_type_v", kind)) not in ("f16", "f32", "bf16"):
        return "a quantised V cache needs flash attention"
    return backends.split_problem(params, kind)


def label(params: Mapping[str, Any], reference: Mapping[str, Any], name: str | None = None) -> str:
    """What a candidate changes from the defaults, e.g. ``threads=1, flash_attn=off``; its name first if named."""
    changed = [f"{axis}={params[axis]}" for axis in params if params[axis] != reference.get(axis)]
    text = ", ".join(changed) or "defaults"
    return f"{name} ({text})" if name else text


def study(name: str, spec: Mapping[str, Any], config: Mapping[str, Any], builds: list[str], models: list[str],
          ) -> Study:
    """A study's candidates, in a stable order: the reference first, then the space's, then the named ones."""
    kind = kind_of(spec)
    bench, serving = config["benchmark"], config["serving"]
    defaults = matrix.baseline(bench) if kind == axes.BENCHMARK else axes.canonical_partial(serving["defaults"])
    base = {**defaults, **spec["workload"]}
    reference = axes.normalize(base, kind)
    space = {axis: values(found) for axis, found in spec["space"].items()}
    found: dict[str, Candidate] = {}
    excluded: list[tuple[str, str]] = []

    def add(partial: Mapping[str, Any], named: str | None = None, in_space: bool = True) -> None:
        params = axes.normalize({**base, **axes.canonical_partial(partial)}, kind)
        if why := invalid(params, kind):
            excluded.append((label(params, reference, named), why))
            return
        if params["ubatch_size"] > params["batch_size"]:  # llama.cpp caps it: the run of ubatch = batch
            asked = label(params, reference, named)
            params["ubatch_size"] = params["batch_size"]
        else:
            asked = None
        cid = matrix.cell_id(params, kind, **({} if named is None else {"candidate": named}))
        if cid in found and asked:
            excluded.append((asked, f"ubatch is capped at batch: the same run as {found[cid].label}"))
        found.setdefault(cid, Candidate(cid, label(params, reference, named), params, named, in_space))

    # the defaults are a point of the grid where the space's values include theirs
    add({}, in_space=all(axes.value(reference, axis, kind) in found_values for axis, found_values in space.items()))
    for combo in itertools.product(*space.values()):
        add(dict(zip(space, combo)))
    for named, partial in spec["candidates"].items():
        add(partial, named, in_space=False)
    ordered = [axis for axis in axes.names(kind) if len(space.get(axis, ())) > 1]
    section = bench if kind == axes.BENCHMARK else serving
    return Study(name, kind, tuple(spec["builds"] or section["builds"] or builds),
                 tuple(spec["models"] or section["models"] or models), tuple(found.values()),
                 matrix.cell_id(reference, kind), tuple(ordered), tuple(excluded), spec)


ROUND = re.compile(r"^(?P<base>.+?)(?:_round-(?P<round>\d+))?$")


def split(cell: str) -> tuple[str, int]:
    """A study cell's id -> (candidate id, round)."""
    match = ROUND.match(cell)
    return match["base"], int(match["round"] or 1)


def cell_id(candidate: str, round_: int) -> str:
    """A candidate's cell in one round: round 1 keeps the plain id, as grid cells do."""
    return candidate if round_ == 1 else f"{candidate}_round-{round_}"


def memory_settings(memory: Mapping[str, Any], study: Study) -> dict[str, Any]:
    """The fit decision's settings for a study's candidate: its ``memory_limit_mib`` where that is the tighter one
    (a constraint: a candidate predicted to need more is not started, and the study drops it)."""
    limits = [limit for limit in (memory["limit_mib"], study.settings["memory_limit_mib"]) if limit is not None]
    return {**memory, "limit_mib": min(limits) if limits else None}

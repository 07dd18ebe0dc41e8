"""Studies over llama.cpp's history: a bisect (which commit made it slower) and a history (a series of commits).

Both build commits of a ``git`` source with one configured build's CMake options
(probe builds: ``results/probes/<source>/<build>/<commit>/``, named
``<build>~<commit>``, never the ``<build>@<commit>`` of a kept version) and measure
llama-bench cells on them. Which commits a study measures is decided by its
checkpoints (derive/bisect.py, derive/changes.py); the plan names every cell
one may ask for: a commit, a model, the study's cell, a round - and, for a
bisect, which probe (step of the search) it belongs to, since every probe
measures the good and bad endpoints again beside itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llamabench.core import axes, matrix

BISECT, HISTORY = "bisect", "history"
PROBE_ROLES = frozenset({"bench"})  # a study's cells are llama-bench cells: its builds need nothing else
LABEL_LENGTH = 9


def probe_label(build: str, commit: str) -> str:
    """``cpu~0c1e57098``: a probe build's name in records (``@`` is a kept version's)."""
    return f"{build}~{commit[:LABEL_LENGTH]}"


@dataclass(frozen=True)
class Study:
    name: str
    kind: str  # bisect or history
    source: str  # a git source's name
    url: str
    build: str  # the configured build whose CMake options every probe is built with
    cmake_options: tuple[str, ...]
    models: tuple[str, ...]
    cells: Mapping[str, Mapping[str, Any]]  # cell id -> llama-bench parameters (empty: a comparison's, decided late)
    settings: Mapping[str, Any]  # the config's spec: refs, metric, rounds, max_rounds, alpha, ...

    @property
    def metric(self) -> str:
        return self.settings["metric"]

    def params(self, cell: str, late: Mapping[str, Mapping[str, Any]] | None = None) -> Mapping[str, Any]:
        """A cell's parameters: the study's own, or (``comparison:`` studies) those its first step chose."""
        return self.cells[cell] if cell in self.cells else (late or {})[cell]


def measured(state: Mapping[str, Any]) -> list[int]:
    """The positions (in the range) a bisect state's next measurement needs built: the two endpoints, measured
    again beside every probe so that drift between probes cannot look like a regression, its probe, and at the
    end of a search the parent its culprit is confirmed against."""
    wanted = state["next"]
    extra = [p for p in (wanted["target"], wanted.get("parent")) if p is not None]
    return list(dict.fromkeys([0, len(state["commits"]) - 1, *extra]))


def cells(spec: Mapping[str, Any], bench: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each of the study's cells (axis values over ``benchmark.defaults``) by its id."""
    base = matrix.baseline(bench)
    found = {}
    for partial in spec.get("cells") or []:
        params = axes.normalize({**base, **axes.canonical_partial(partial)}, axes.BENCHMARK)
        found[matrix.cell_id(params)] = params
    return found


def study(name: str, kind: str, spec: Mapping[str, Any], config: Mapping[str, Any]) -> Study:
    source = config["sources"][spec["source"]]
    build = spec["build"] or next(iter(sorted(config["builds"])))
    return Study(name, kind, spec["source"], source.get("url", ""), build,
                 tuple(config["builds"][build]["cmake_options"]),
                 tuple(spec["models"] or list(config["models"])[:1]), cells(spec, config["benchmark"]), spec)

"""The plan's dynamic part: what each checkpoint's record leads to, as pure functions of the plan and the records.

The static plan (core/plan.py) names every cell a config asks for up front. A run's checkpoints then decide more:
the re-measure checkpoint extra rounds, a tuning study's ``tune_round`` chain the candidates of each round, a load
sweep's pilots its levels, a bisect's ``bisect_step`` chain its probes, a history's range its commits, and each
``probe_build`` whether a commit's cells can be measured at all. Here each decision becomes the files a rule's input
names, in a fixed order. A checkpoint's record reaches these functions through a callable (:data:`Recorded`), so the
walks are the same code under Snakemake (``checkpoints.<rule>.get``, which waits for the record) and in a unit test
(recorded records handed back), and every planning decision is testable in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from llamabench.core import bisect, layout, quality
from llamabench.core.plan import Plan
from llamabench.core.status import Status

# A checkpoint's record, by the checkpoint's key (its wildcards as keyword arguments).
Recorded = Callable[..., Mapping[str, Any]]


def measured(plan: Plan, kind: str, remeasure: Recorded) -> list[str]:
    """The rounds of ``kind`` a run measures: the planned ones, then the extra rounds the re-measure checkpoint
    chose (asked for only where the plan has that checkpoint: otherwise nothing waits for it)."""
    planned = [cell.path for cell in plan.planned(kind)]
    if not plan.remeasure:
        return planned
    chosen = [(d["kind"], d["build"], d["model"], d["cell"], d["last_round"]) for d in remeasure()["decisions"]]
    return planned + [cell.path for cell in plan.extra_rounds(chosen) if cell.kind == kind]


def tune_round_input(plan: Plan, study: str, build: str, model: str, round_: int, decision: Recorded,
                     ) -> dict[str, Any]:
    """Decision ``round_`` reads decision ``round_ - 1`` and every cell measured so far: those it lists as measured
    and round ``round_``'s, the candidates it chose. Decision 0 opens the study from its build alone."""
    built = layout.path("build", build=build)
    if round_ == 0:  # and a quality budget's evidence: the quality cells of the candidates' settings
        if not quality.budget(plan.studies[study].settings):
            return {"build": built}
        return {"build": built, "quality": [c.path for c in plan.candidate_quality(study, build, model).values()]}
    key = {"study": study, "build": build, "model": model, "round": round_ - 1}
    state = decision(**key)["state"]
    chosen = [*state["measured"], *[(c, round_) for c in state["next"]]]
    return {"build": built, "previous": layout.path("tune_round", **key),
            "cells": [c.path for c in plan.tune_cells(study, build, model, chosen)]}


def tune_input(plan: Plan, study: str, decision: Recorded) -> dict[str, list[str]]:
    """Each race's (build and model's) last decision, the first whose state says the study ended, and every cell
    it lists as measured."""
    decisions, cells = [], []
    for name, build, model in plan.tune_pairs():
        if name != study:
            continue
        key = {"study": study, "build": build, "model": model}
        *_, (round_, state) = _walk(decision, "round", **key)
        decisions.append(layout.path("tune_round", **key, round=round_))
        cells += [c.path for c in plan.tune_cells(study, build, model, state["measured"])]
    return {"decisions": decisions, "cells": cells}


def load_levels(plan: Plan, sweep: str, model: str, pilot: Recorded) -> list[float]:
    """A sweep's rates for one model: the config's, or the union of every build's pilot's chosen levels, so that
    every build measures the same levels and builds pair."""
    found = plan.sweeps[sweep]
    if not found.piloted:
        return list(found.settings["rates"])
    return sorted({rate for build in found.builds for rate in pilot(sweep=sweep, build=build, model=model)["chosen"]})


def load_sweep_input(plan: Plan, sweep: str, pilot: Recorded) -> dict[str, list[str]]:
    """Every pilot of the sweep (where it has them) and every round of every level of every build and model."""
    found = plan.sweeps[sweep]
    pilots = [layout.path("load_pilot", sweep=name, build=build, model=model)
              for name, build, model in plan.load_pairs() if name == sweep and found.piloted]
    cells = [cell.path for model in found.models
             for cell in plan.load_cells(sweep, model, load_levels(plan, sweep, model, pilot))]
    return {"pilots": pilots, "cells": cells}


def probe_path(found: bisect.Study, commit: str) -> str:
    """A study's build of ``commit``: shared by every study of the same source and build."""
    return layout.path("probe_build", source=found.source, build=found.build, commit=commit)


def built(found: bisect.Study, commits: list[str], probe: Recorded) -> list[str]:
    """The commits of ``commits`` whose probe build succeeded: only they have cells (a failed build is a result the
    study reads from the build's record)."""
    return [c for c in commits if probe(source=found.source, build=found.build, commit=c)["status"] == Status.OK]


def bisect_measurement(plan: Plan, study: str, state: Mapping[str, Any], probe: Recorded,
                       ) -> tuple[list[str], list[str]]:
    """The builds and cells of the measurement a bisect state asks for next: its probe's commit and the two
    endpoints measured beside it, every round up to the state's, of the commits that built."""
    found = plan.bisects[study]
    commits = [state["commits"][p]["commit"] for p in bisect.measured(state)]
    wanted = state["next"]
    cells = plan.commit_cells(bisect.BISECT, study, built(found, commits, probe), state["cells"],
                              range(1, wanted["rounds"] + 1), probe=wanted["probe"])
    return [probe_path(found, c) for c in commits], [c.path for c in cells]


def bisect_step_input(plan: Plan, study: str, step: int, decision: Recorded, probe: Recorded) -> dict[str, Any]:
    """Step 0 reads what chooses its range or cells (a history study, the comparisons); step n the state of step
    n - 1 and the measurement it asked for."""
    found = plan.bisects[study]
    if step == 0:
        inputs = {}
        if "history" in found.settings:
            inputs["history"] = layout.path("history_study", study=found.settings["history"])
        if "comparison" in found.settings:
            inputs["comparisons"] = layout.path("comparisons")
        return inputs
    state = decision(study=study, step=step - 1)["state"]
    builds, cells = bisect_measurement(plan, study, state, probe)
    return {"previous": layout.path("bisect_step", study=study, step=step - 1), "builds": builds, "cells": cells}


def bisect_study_input(plan: Plan, study: str, decision: Recorded, probe: Recorded) -> dict[str, list[str]]:
    """Every step up to the one that ended the study, and every build and cell they measured, each once: a step that
    gives a probe another round asks for its earlier rounds again, which were measured (and are counted) once."""
    steps, builds, cells = [], set(), []
    for step, state in _walk(decision, "step", study=study):
        steps.append(layout.path("bisect_step", study=study, step=step))
        if not state["ended"]:
            found_builds, found_cells = bisect_measurement(plan, study, state, probe)
            builds.update(found_builds)
            cells += found_cells
    return {"steps": steps, "builds": sorted(builds), "cells": list(dict.fromkeys(cells))}


def history_study_input(plan: Plan, study: str, history_range: Recorded, probe: Recorded) -> dict[str, Any]:
    """The range, every commit's build, and every round of every cell of the commits that built."""
    found = plan.histories[study]
    commits = [c["commit"] for c in history_range(study=study)["commits"]]
    cells = plan.commit_cells(bisect.HISTORY, study, built(found, commits, probe), list(found.cells),
                              range(1, found.settings["rounds"] + 1))
    return {"range": layout.path("history_range", study=study), "builds": [probe_path(found, c) for c in commits],
            "cells": [c.path for c in cells]}


def _walk(decision: Recorded, index: str, **key: Any) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """A chain of checkpoints (``index`` 0, 1, ...) up to and including the first whose state says it ended: each
    is asked for only once the one before it did not end, since Snakemake makes them one after the other."""
    at = 0
    while True:
        state = decision(**key, **{index: at})["state"]
        yield at, state
        if state["ended"]:
            return
        at += 1

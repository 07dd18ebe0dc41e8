"""Checkpoint ``noisy``: noisy cells, decided after the data are in, and the cells to measure again.

Once every planned round of every cell has run, the cells whose round means
vary more than ``benchmark.noisy_cv`` get extra rounds up to
``benchmark.remeasure.max_rounds`` - and so does the defaults cell they are
compared with, in the same extra rounds, so the extra measurements interleave
the noisy cells with their partners instead of bringing drift back. The record
holds the decision only; which files that means is the plan's
(``Plan.extra_rounds``), so the checkpoint never spells a cell's path.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from llamabench.core import records
from llamabench.core.records import RecordError
from llamabench.core.status import Status
from llamabench.derive import statistics, tables


def noisy(smk: Any) -> None:
    """Checkpoint ``noisy``: results/noisy.json, the base cells whose extra rounds the summary then asks for."""
    found = find([Path(p) for p in smk.input.cells], smk.params.noisy_cv)
    chosen = sorted({*found, *((build, model, smk.params.defaults_cell) for build, model, _ in found)})
    records.write(smk.output[0], "noisy", {"noisy_cv": smk.params.noisy_cv, "max_rounds": smk.params.max_rounds,
                                           "noisy_cells": ["/".join(key) for key in sorted(found)],
                                           "remeasured": [list(key) for key in chosen]})


def find(cell_paths: list[Path], noisy_cv: float) -> set[tuple[str, str, str]]:
    """(build, model, base cell) of every cell with a test whose round means have a CV above ``noisy_cv``."""
    means: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    for path in cell_paths:
        try:
            cell = records.read(path, "bench_cell")
        except RecordError:
            continue  # the summary reports it
        if cell["llama_bench"]["status"] != Status.OK:
            continue
        for rec in cell["llama_bench"]["records"]:
            key = (cell["build"]["name"], cell["model"]["name"], cell["base_cell"], tables.test_of(rec))
            means[key].append(float(rec["avg_ts"]))
    return {key[:3] for key, values in means.items() if (spread := statistics.cv(values)) and spread > noisy_cv}

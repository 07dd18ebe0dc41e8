"""Noisy cells, decided after the data are in: which cells to measure again, and in which rounds.

A checkpoint: once every planned round of every cell has run, the cells whose
round means vary more than ``benchmark.noisy_cv`` get extra rounds up to
``benchmark.remeasure.max_rounds`` - and so does the defaults cell they are
compared with, in the same extra rounds, so the extra measurements interleave
the noisy cells with their partners instead of bringing drift back.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from llamabench import matrix, records
from llamabench.records import RecordError

# Bump when the choice of cells to measure again changes.
RULE_VERSION = 1


def noisy(smk: Any) -> None:
    """Checkpoint ``noisy``: results/noisy.json, the extra cell files the summary then asks for."""
    bench = smk.config["benchmark"]
    found = find([Path(p) for p in smk.input.cells], bench["noisy_cv"])
    base_id = matrix.cell_id(matrix.baseline(bench))
    chosen = sorted({*found, *((build, model, base_id) for build, model, _ in found)})
    extra = [f"results/cells/{build}/{model}/{matrix.cell_id(params, round=r)}.json"
             for build, model, cell in chosen
             for params in [dict(smk.params.params[f"{build}/{model}/{cell}"])]
             for r in range(bench["rounds"] + 1, bench["remeasure"]["max_rounds"] + 1)]
    records.write(smk.output[0], "noisy", {"noisy_cv": bench["noisy_cv"],
                                           "noisy_cells": [f"{b}/{m}/{c}" for b, m, c in sorted(found)],
                                           "extra_cells": extra})


def find(cell_paths: list[Path], noisy_cv: float) -> set[tuple[str, str, str]]:
    """(build, model, base cell) of every cell with a test whose round means have a CV above ``noisy_cv``."""
    means: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    for path in cell_paths:
        try:
            cell = records.read(path, "bench_cell")
        except RecordError:
            continue  # the summary reports it
        if cell["llama_bench"]["status"] != "ok":
            continue
        for rec in cell["llama_bench"]["records"]:
            key = (cell["build"]["name"], cell["model"]["name"], cell["base_cell"], f"{rec['n_prompt']}/{rec['n_gen']}")
            means[key].append(float(rec["avg_ts"]))
    return {key[:3] for key, values in means.items()
            if len(values) > 1 and np.std(values, ddof=1) / np.mean(values) > noisy_cv}

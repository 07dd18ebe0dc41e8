"""Rule ``tune_serve_cell``: one round of one candidate of a served-objective tuning study (TTFT, throughput),
measured exactly as a serving cell is (serve_run.py), in the study's own directory
(results/tune/<study>/serving/)."""

from __future__ import annotations

from typing import Any

from llamabench import serve_run
from llamabench.core import plan, tuning


def tune_serve_cell(smk: Any) -> None:
    the_plan = plan.of(smk.config)
    cell = the_plan.tune_cell(smk.wildcards.study, smk.wildcards.build, smk.wildcards.model, smk.wildcards.cell)
    serve_run.measure(smk, the_plan, cell, tuning.memory_settings(the_plan.memory, the_plan.studies[cell.study]))

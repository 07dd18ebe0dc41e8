"""Rule ``tune_cell``: one round of one tuning candidate, measured exactly as a benchmark cell is.

The same lock, record kind and statistics as the grid's cells (cell_run.py);
its own directory (results/tune/<study>/cells/), so a study never borrows a
grid's measurement. A study's ``memory_limit_mib`` is a constraint: a candidate
predicted to need more is not started, and the study drops it with that reason.
"""

from __future__ import annotations

from typing import Any

from llamabench import cell_run
from llamabench.core import plan, tuning


def tune_cell(smk: Any) -> None:
    the_plan = plan.of(smk.config)
    cell = the_plan.tune_cell(smk.wildcards.study, smk.wildcards.build, smk.wildcards.model, smk.wildcards.cell)
    cell_run.measure(smk, the_plan, cell, tuning.memory_settings(the_plan.memory, the_plan.studies[cell.study]))

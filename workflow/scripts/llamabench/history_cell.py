"""Rule ``history_cell``: one round of one cell on one commit of a history study, measured as a benchmark cell
is (cell_run.py)."""

from __future__ import annotations

from typing import Any

from llamabench import cell_run
from llamabench.core import bisect, plan


def history_cell(smk: Any) -> None:
    the_plan = plan.of(smk.config)
    w = smk.wildcards
    cell_run.measure(smk, the_plan, the_plan.commit_cell(bisect.HISTORY, w.study, w.commit, w.model, w.cell),
                     the_plan.memory)

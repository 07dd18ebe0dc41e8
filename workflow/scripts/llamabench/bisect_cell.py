"""Rule ``bisect_cell``: one round of one cell on one commit of a bisect probe, measured as a benchmark cell is
(cell_run.py), under the probe's own directory: every probe measures the endpoints again beside itself."""

from __future__ import annotations

from typing import Any

from llamabench import cell_run
from llamabench.core import bisect, plan


def bisect_cell(smk: Any) -> None:
    the_plan = plan.of(smk.config)
    w = smk.wildcards
    cell_run.measure(smk, the_plan, the_plan.commit_cell(bisect.BISECT, w.study, w.commit, w.model, w.cell,
                                                         int(w.probe)), the_plan.memory)

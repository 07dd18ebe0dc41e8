"""Rule ``load_cell``: one round of one level of a load sweep, measured exactly as a serving cell is
(serve_run.py), in the sweep's own directory (results/load/<sweep>/cells/)."""

from __future__ import annotations

from typing import Any

from llamabench import serve_run
from llamabench.core import plan


def load_cell(smk: Any) -> None:
    the_plan = plan.of(smk.config)
    cell = the_plan.load_cell(smk.wildcards.sweep, smk.wildcards.build, smk.wildcards.model, smk.wildcards.cell)
    serve_run.measure(smk, the_plan, cell, the_plan.memory)

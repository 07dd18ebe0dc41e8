"""Rule ``bench_cell``: one round of one benchmark cell, llama-bench with exactly the cell's parameters
(cell_run.py measures and records it)."""

from __future__ import annotations

from typing import Any

from llamabench import cell_run
from llamabench.core import plan


def bench_cell(smk: Any) -> None:
    """Rule ``bench_cell``: one round of one parameter set, recorded even when it fails."""
    the_plan = plan.of(smk.config)
    cell_run.measure(smk, the_plan,
                     the_plan.cell("bench_cell", smk.wildcards.build, smk.wildcards.model, smk.wildcards.cell),
                     the_plan.memory)

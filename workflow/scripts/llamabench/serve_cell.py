"""Rule ``serve_cell``: one serving cell, llama-server on loopback and a streaming client (serve_run.py
measures and records it)."""

from __future__ import annotations

from typing import Any

from llamabench import serve_run
from llamabench.core import plan


def serve_cell(smk: Any) -> None:
    """Rule ``serve_cell``: one serving scenario cell, recorded even when it fails."""
    the_plan = plan.of(smk.config)
    serve_run.measure(smk, the_plan,
                      the_plan.cell("serve_cell", smk.wildcards.build, smk.wildcards.model, smk.wildcards.cell),
                      the_plan.memory)

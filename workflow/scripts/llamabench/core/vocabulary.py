"""The record schemas' vocabularies, generated from the registries as the config's axis blocks are from axes.py.

``workflow/schemas/records/vocabulary.schema.yaml`` is what ``python -m
llamabench.core.vocabulary`` writes (a test keeps the two equal): the finding
questions (core/questions.py), the comparison kinds (core/comparisons.py) and the
metrics that get statistics over rounds (core/metrics.py). A row schema takes one
by ``$ref: "vocabulary.schema.yaml#/$defs/<name>"``, which core/records.py
resolves, so a new question, kind or metric is an entry in its registry and the
regenerated file, never a hand-edited enum.
"""

from __future__ import annotations

import sys
from typing import Any

from llamabench.core import comparisons, metrics, questions


def schema_defs() -> dict[str, Any]:
    summarised = [m for m in metrics.METRICS.values() if {metrics.SERVE_CELL, metrics.RPC_CELL} & set(m.summarised_in)]
    return {
        "question": {"description": "what the row answers: " + "; ".join(
            f"{q.name} ({q.description})" for q in questions.QUESTIONS.values()),
            "enum": list(questions.QUESTIONS)},
        "comparison": {"description": "what is paired: " + "; ".join(
            f"{c.name} ({c.compares}; its verdict: {c.says})" for c in comparisons.COMPARISONS.values()),
            "enum": list(comparisons.COMPARISONS)},
        "summarised_metric": {"description": "a serving_row or rpc_row column with statistics over rounds: "
                                             + "; ".join(f"{m.name} ({m.label}, {m.better} is better)"
                                                         for m in summarised),
            "enum": [m.name for m in summarised]},
        "better": {"description": "which direction is the better one; null: neither",
                   "enum": [metrics.HIGHER, metrics.LOWER, None]},
    }


def schema_document() -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "Generated from llamabench/core/vocabulary.py (python -m llamabench.core.vocabulary > "
                           "workflow/schemas/records/vocabulary.schema.yaml); tests/test_vocabulary.py keeps the two "
                           "equal.",
            "$defs": schema_defs()}


if __name__ == "__main__":
    import yaml

    yaml.safe_dump(schema_document(), sys.stdout, sort_keys=False, width=120, allow_unicode=True)

"""How close a memory predictor came to what was used: the error of each prediction and a predictor's summary.

A prediction is *within tolerance* within 10 % of what was used or within 32 MiB
(small buffers: a few MiB of alignment and bookkeeping are not worth a relative
error); its error is relative to what was used.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

TOLERANCE, SLACK_MIB = 0.10, 32.0
# The predictors, as results/memory.csv names them.
OURS, FIT_PARAMS = "derive/memory.py", "llama-fit-params"


def within(predicted: float | None, used: float | None) -> bool | None:
    if predicted is None or used is None or pd.isna(predicted) or pd.isna(used):
        return None
    return abs(predicted - used) <= max(TOLERANCE * used, SLACK_MIB)


def error(predicted: float | None, used: float | None) -> float | None:
    if predicted is None or not used or pd.isna(predicted) or pd.isna(used):
        return None
    return round((predicted - used) / used, 4)


def accuracy(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Per build, model and predictor, components and host totals apart: how many were compared, how many were
    within tolerance, the median and the worst relative error and where the worst was."""
    found = []
    compared = table.dropna(subset=["error"])
    scope = compared["component"].eq("total").map({True: "totals", False: "components"})
    for (build, model, predictor, part), group in compared.groupby(["build", "model", "predictor", scope]):
        worst = group.loc[group["error"].abs().idxmax()]
        found.append({"build": build, "model": model, "predictor": predictor, "scope": part,
                      "compared": len(group), "within": int(group["within_tolerance"].astype(bool).sum()),
                      "median_abs_error": round(float(group["error"].abs().median()), 4),
                      "worst_error": float(worst["error"]), "worst_cell": worst["cell"],
                      "worst_where": f"{worst['device']} {worst['component']}, n_ctx {worst['n_ctx']}"})
    return found

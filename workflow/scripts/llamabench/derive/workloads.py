"""Workloads described, not compared: how a metric changes with the work a cell is given.

A prompt length or a concurrency is no choice that makes a server faster (core/axes.py: such an axis's role is
``workload``), so a cell that changes one is never compared with the defaults (stats.py). The findings describe it
instead, from the cells of one build, model and host that differ in that axis alone: how much a metric grows per
unit of the axis, with its interval (``per_unit``), or the metric at each value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from scipy import stats as scipy_stats

from llamabench.core import axes
from llamabench.derive import statistics

FIT, PAIRED = "linear fit", "paired by round"


def varying(rounds: pd.DataFrame, axis: str, kind: str) -> list[tuple[str, pd.DataFrame]]:
    """The groups of ``rounds`` (a row per cell and round: build, model, hostname and the axis columns of ``kind``)
    whose cells share build, model, host and every axis but ``axis``, and take at least two values of it; each with
    the shared axes that tell it from the other cells of its build and model, in words (``concurrency 2``)."""
    others = [name for name in axes.names(kind) if name != axis]
    found = []
    for _, cells in rounds.groupby(["build", "model"]):
        told = [name for name in others if cells[name].astype(str).nunique() > 1]
        keys = ["hostname", *others]
        for shared, group in cells.groupby(keys, dropna=False, sort=False):
            if group[axis].nunique() > 1:
                where = dict(zip(keys, shared))
                found.append((", ".join(f"{name} {where[name]}" for name in told if pd.notna(where[name])), group))
    return found


def same_work(cells: pd.DataFrame, kind: str) -> list[tuple[str, pd.DataFrame]]:
    """The groups of ``cells`` (a row per cell: build, model, hostname and the axis columns of ``kind``) that do the
    same work: one build, model and host and every workload axis equal; each with that work in words
    (``prompt_tokens 32, concurrency 2``), naming the workload axes that tell it from the other cells of its build
    and model."""
    work = list(axes.workload(kind))
    found = []
    for _, cells_of in cells.groupby(["build", "model"]):
        told = [name for name in work if cells_of[name].astype(str).nunique() > 1]
        for shared, group in cells_of.groupby(["hostname", *work], dropna=False, sort=False):
            where = dict(zip(["hostname", *work], shared))
            found.append((", ".join(f"{name} {where[name]}" for name in told if pd.notna(where[name])), group))
    return found


def per_unit(x: Sequence[float], rounds: Sequence[int], values: Sequence[float]) -> dict[str, Any] | None:
    """How much ``values`` grow per unit of ``x`` (``rounds``: the round of each value), with a 95 % interval.

    With three or more distinct ``x``, the slope of a least-squares line through every value, its interval from the
    slope's standard error and t with n - 2 degrees of freedom. With two, the difference per unit in each round both
    have (the rounds are interleaved, so pairing cancels the machine's drift) and the t-interval of its mean over those
    rounds. None with fewer than two distinct ``x``.
    """
    points = pd.DataFrame({"x": x, "round": rounds, "value": values}).astype(float)
    levels = sorted(points["x"].unique())
    if len(levels) < 2:
        return None
    if len(levels) >= 3:
        fit = scipy_stats.linregress(points["x"], points["value"])
        half = scipy_stats.t.ppf(0.975, len(points) - 2) * fit.stderr
        return {"slope": float(fit.slope), "ci_low": float(fit.slope - half), "ci_high": float(fit.slope + half),
                "levels": levels, "points": len(points), "method": FIT}
    by_round = points.pivot_table(index="round", columns="x", values="value").dropna()
    slopes = ((by_round[levels[1]] - by_round[levels[0]]) / (levels[1] - levels[0])).tolist()
    if not slopes:
        return None
    low, high = statistics.interval(slopes)
    return {"slope": sum(slopes) / len(slopes), "ci_low": low, "ci_high": high, "levels": levels,
            "points": len(slopes), "method": PAIRED}

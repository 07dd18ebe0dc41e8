"""The vocabulary of the result tables: tests, settings, current rows and failed ones.

One place for what every aggregate asks of a row: which test it is (llama-bench's
name, ``pp128``; its kind, pp, tg or both, is core/metrics.py's), which
setting it is (what differs from the defaults cell), whether it is a kept version,
whether its status is a failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from llamabench.core import axes, comparisons, layout, metrics, records
from llamabench.core.status import Status


def single_tests(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of plain pp or tg tests (not combined ones), with their kind in a column ``kind``."""
    kinds = table["test"].map(lambda t: metrics.test_kind(t) if isinstance(t, str) else None)
    return table.assign(kind=kinds)[kinds.isin(metrics.SINGLE)]


def current(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the current builds, without the versions kept in results/history."""
    return table[~table["history"].fillna(False).astype(bool)]


def used_statuses(action: str) -> set[str]:
    """The statuses whose rounds the statistics use: a disturbed round only where the action is to flag it
    (benchmark.disturbance.action)."""
    return {Status.OK, Status.DISTURBED} if action == "flag" else {Status.OK}


def per_cell(table: pd.DataFrame, used: set[str]) -> pd.DataFrame:
    """A row per cell (build, model, base cell) from its rounds' rows the statistics use: numbers averaged
    over those rounds, everything else as the first round has it."""
    rows = table[table["status"].isin(used)]
    if rows.empty:
        return rows
    numbers = [c for c in rows.columns if pd.api.types.is_numeric_dtype(rows[c]) and not pd.api.types.is_bool_dtype(
        rows[c]) and c != "round"]
    keys = ["build", "model", "base_cell"]
    first = rows.groupby(keys, as_index=False).first()
    means = rows.groupby(keys, as_index=False)[numbers].mean()
    return first.drop(columns=numbers).merge(means, on=keys)[list(rows.columns)]


def failed_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows whose status a rerun may change (core/status.py): not those that ran, were skipped, ran out of
    memory or were otherwise an expected outcome."""
    return table[table["status"].map(lambda s: Status(s).is_failure).astype(bool)]


def failed_paths(cell_kind: str, cell_paths: Iterable[Path], table: pd.DataFrame) -> list[Path]:
    """The cell files whose run failed or could not be read, for ``snakemake --forcerun $(cat ...)``."""
    failed = failed_rows(current(table))
    bad = set(zip(failed["build"], failed["model"], failed["cell"]))
    keys = {Path(p): layout.parse(cell_kind, p) for p in cell_paths}
    return [p for p in sorted(keys) if (keys[p]["build"], keys[p]["model"], keys[p]["cell"]) in bad]


def value(row: Mapping[str, Any], axis: str) -> Any:
    """An axis value of a table row as the cell had it: a row that predates an optional axis has its default."""
    found = records.plain(row.get(axis))
    return axes.value({} if found is None else {axis: found}, axis)


def same_workload(row: Mapping[str, Any], other: Mapping[str, Any], kind: str) -> bool:
    """Whether two table rows (or a row and a cell's parameters) of ``kind`` do the same work: settings are compared
    within one workload only (core/axes.py, an axis's role)."""
    return axes.same_workload(*({axis: value(r, axis) for axis in axes.workload(kind)} for r in (row, other)), kind)


def setting_text(row: Mapping[str, Any], base: Mapping[str, Any]) -> str:
    """What differs from the defaults, e.g. ``threads=1, batch_size=512``; ``defaults`` if nothing."""
    diffs = [f"{axis}={value(row, axis)}" for axis in axes.names(axes.BENCHMARK)
             if value(row, axis) != axes.value(base, axis)]
    return ", ".join(diffs) or "defaults"


def setting_of(cells: pd.DataFrame, model: str, cell: str, base: Mapping[str, Any]) -> str:
    """The setting text of cell ``cell`` of ``model`` as a stats table has it, or the id where it has none
    (a cell's id spells its parameters, so any build's row will do)."""
    found = cells[(cells["model"] == model) & (cells["cell"] == cell)]
    return setting_text(found.iloc[0], base) if len(found) else cell


def sweep(cells: pd.DataFrame, free: set[str], base: Mapping[str, Any]) -> pd.DataFrame:
    """Cell statistics whose axes outside ``free`` all keep their default value: one figure's slice."""
    keep = [all(value(row, axis) == axes.value(base, axis) for axis in axes.names(axes.BENCHMARK) if axis not in free)
            for _, row in cells.iterrows()]
    return cells[pd.Series(keep, index=cells.index, dtype=bool)] if len(cells) else cells


def swept(cells: pd.DataFrame, name: str, base: Mapping[str, Any]) -> bool:
    """Whether figure ``name`` (core/axes.py FIGURES) has more than the default value of its axis to show."""
    x_axis, split, _ = axes.FIGURES[name]
    swept_axes = [a for a in (x_axis, split) if a]
    data = sweep(cells, set(swept_axes), base)
    return any(data[a].nunique() > 1 for a in swept_axes)


# The figures table (results/figures_table.csv and .md): a view of the findings, in the columns it always had.
FIGURES_TABLE = {"build": "build", "model": "model", "metric": "label", "best_cell": "cell", "setting": "answer",
                 "value": "value", "defaults_value": "reference_value", "speedup_vs_defaults": "ratio",
                 "significant": "significant", "p_adjusted": "p_adjusted"}


def figures_table(findings: pd.DataFrame) -> pd.DataFrame:
    """The figures table's view of the findings table."""
    return pd.DataFrame({column: findings[source] for column, source in FIGURES_TABLE.items()})


def named_comparison(pairs: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of one named build comparison (comparisons: in the config)."""
    return pairs[(pairs["comparison"] == comparisons.BUILD_VS_BUILD.name) & (pairs["name"] == name)]


def mean_of(values: pd.Series) -> float | None:
    """The mean over the rows that have a value, None where none has."""
    present = values.dropna()
    return float(present.mean()) if len(present) else None


def ttft_estimate(tests: Mapping[str, Mapping[str, Any]]) -> float | None:
    """First-token latency *estimate* from llama-bench's numbers: prompt time at pp speed plus one token at tg
    speed (``tests``: test name -> a record with ``n_prompt`` and ``avg_ts``). llama-bench has no first-token
    metric; this is the closest derivation, and it is named an estimate wherever it is shown."""
    pp = next((r for t, r in tests.items() if metrics.test_kind(t) == metrics.PP), None)
    tg = next((r for t, r in tests.items() if metrics.test_kind(t) == metrics.TG), None)
    if not (pp and tg and pp["avg_ts"] and tg["avg_ts"]):
        return None
    return 1000.0 * (float(pp["n_prompt"]) / float(pp["avg_ts"]) + 1.0 / float(tg["avg_ts"]))

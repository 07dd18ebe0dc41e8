"""Cells -> one tidy table: a row per (cell, llama-bench test), failed cells included.

llama-bench's field names drift between versions (``flash_attn`` bool -> int ->
string, ``use_mmap`` -> ``load_mode``), so records are read defensively:
the cell's own parameters come from the cell record, and only the measurement
fields are taken from llama-bench's JSON. Rows are summary_row records
(workflow/schemas/records/summary_row.schema.yaml), whose order is the CSV's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from llamabench import files, history, matrix, records, sampler, system_state
from llamabench.errors import OUT_OF_MEMORY
from llamabench.records import RecordError

MEASURES = ["avg_ts", "stddev_ts", "avg_ns", "stddev_ns"]
LLAMA_BENCH_FACTS = ["build_commit", "build_number", "cpu_info", "gpu_info", "backends", "model_type", "model_size",
                     "model_n_params", "test_time"]


def summary(smk: Any) -> None:
    """Rule ``summary``: results/summary.csv and the list of failed cell files."""
    cells = [Path(p) for p in smk.input.cells]
    table = summarize(cells + history.kept(Path(smk.output.csv).parent, "cells"))
    records.write_table(Path(smk.output.csv), table)
    write_failed(Path(smk.output.failed), cells, table)


def current(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the current builds, without the versions kept in results/history."""
    return table[~table["history"].astype(bool)]


def failed_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of cells that failed: not those that ran, could not run here (skipped), or ran out of memory
    (an expected outcome of a sweep, which a rerun would not change)."""
    return table[~table["status"].isin(["ok", "skipped", OUT_OF_MEMORY])]


def write_failed(target: Path, cell_paths: list[Path], table: pd.DataFrame) -> None:
    """The cell files whose run failed or could not be read, for ``snakemake --forcerun $(cat ...)``."""
    failed = failed_rows(current(table))
    bad = set(zip(failed["build"], failed["model"], failed["cell"]))
    with files.atomic_path(target) as tmp:
        tmp.write_text("".join(f"{p}\n" for p in sorted(cell_paths)
                               if (p.parent.parent.name, p.parent.name, p.stem) in bad))


def summarize(cell_paths: list[Path]) -> pd.DataFrame:
    """The summary table: a row per cell and test, one row for a cell that failed or could not be read.

    Kept records of earlier versions (history.py) get their history label as build name.
    """
    rows = []
    for path in sorted(cell_paths):
        try:
            rows_of_cell = cell_rows(history.read(path, "bench_cell"))
        except RecordError as err:
            rows_of_cell = [history.unreadable("summary_row", path, err)]
        rows += rows_of_cell
    frame = pd.DataFrame(rows, columns=records.columns("summary_row"))
    return frame.sort_values(["build", "model", "cell", "test"], na_position="last").reset_index(drop=True)


def test_name(n_prompt: int, n_gen: int) -> str:
    """llama-bench's naming: pp512, tg128, or pp512+tg128 for a combined test."""
    if n_prompt and n_gen:
        return f"pp{n_prompt}+tg{n_gen}"
    return f"pp{n_prompt}" if n_prompt else f"tg{n_gen}"


def cell_rows(cell: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary rows of one bench_cell record (read through history.read)."""
    run = cell["llama_bench"]
    common = {
        "build": cell["build"]["name"],
        "history": cell.get("history", False),
        "model": cell["model"]["name"],
        "synthetic": bool(cell["model"]["origin"].get("synthetic")),
        "cell": cell["cell"],
        "base_cell": cell["base_cell"],
        "round": cell["round"],
        "status": run["status"],
        "busy": system_state.busy(cell["system"]),
        **{axis: matrix.value(cell["params"], axis) for axis in matrix.AXES},
        **offload_columns(cell.get("offload")),
        "commit": cell["build"]["commit"],
        "options": " ".join(cell["build"]["options"]),
        "compiler": cell["build"]["compiler"],
        "cache_key": cell["build"]["cache_key"],
        "hostname": cell["host"]["hostname"],
        "cpu": cell["host"]["cpu"],
        "model_sha256": cell["model"]["sha256"],
        "peak_rss_mib": run["peak_rss_mib"],
        "peak_vram_mib": sampler.peak_vram(run.get("samples")),
        "duration_s": run["duration_s"],
        "command_line": run["command_line"],
        "error": run.get("error"),
        "notes": "; ".join(cell.get("notes", [])) or None,
    }
    if run["status"] != "ok":
        return [records.new("summary_row", common)]
    rows = []
    for rec in run["records"]:
        row = {**common, "test": test_name(int(rec.get("n_prompt", 0)), int(rec.get("n_gen", 0)))}
        row.update({key: rec.get(key) for key in MEASURES + LLAMA_BENCH_FACTS})
        row["gpu_info"] = rec.get("gpu_info") or None
        row["samples_ts"] = json.dumps(rec.get("samples_ts"))
        row.update(energy_columns(run.get("samples"), rec))
        rows.append(row)
    add_ttft_estimate(rows)
    return [records.new("summary_row", row) for row in rows]


def offload_columns(offload: dict[str, Any] | None) -> dict[str, Any]:
    """Where the layers went (records from before placement was recorded have none)."""
    offload = offload or {}
    return {"offloaded_layers": offload.get("offloaded_layers"), "model_layers": offload.get("model_layers"),
            "op_offload": offload.get("op_offload")}


def energy_columns(samples: dict[str, Any] | None, rec: dict[str, Any]) -> dict[str, Any]:
    """GPU energy per token and mean power of one llama-bench test, from its timed phase (prompt runs for a
    pp test, generation runs for a tg test) over all repetitions; none for a combined pp+tg test."""
    energy = (samples or {}).get("energy")
    n_prompt, n_gen, reps = int(rec.get("n_prompt", 0)), int(rec.get("n_gen", 0)), len(rec.get("samples_ns") or [])
    phase, tokens = ("prompt", n_prompt) if not n_gen else ("generation", n_gen) if not n_prompt else (None, 0)
    found = sampler.per_token(energy, phase, tokens * reps)
    return {"energy_j_per_token": found["j_per_token"], "gpu_power_w": found["power_w"],
            "energy_source": energy["source"] if energy and found["j_per_token"] is not None else None}


def add_ttft_estimate(rows: list[dict[str, Any]]) -> None:
    """First-token latency *estimate*: prompt time at pp speed plus one token at tg speed.

    llama-bench has no first-token metric; this is the closest derivation
    from its numbers, and it is named an estimate wherever it is shown.
    """
    pp = next((r for r in rows if r["test"].startswith("pp") and "+" not in r["test"]), None)
    tg = next((r for r in rows if r["test"].startswith("tg")), None)
    estimate = None
    if pp and tg and pp["avg_ts"] and tg["avg_ts"]:
        estimate = 1000.0 * (pp["n_prompt"] / pp["avg_ts"] + 1.0 / tg["avg_ts"])
    for row in rows:
        row["ttft_estimate_ms"] = estimate


# The figures table's columns: every part of it (settings, serving, RPC) fills these.
BEST_COLUMNS = ["build", "model", "metric", "best_cell", "setting", "value", "defaults_value", "speedup_vs_defaults",
                "significant", "p_adjusted"]

# What a cell measures, as opposed to how: settings are compared within one workload only.
WORKLOAD = ["n_prompt", "n_gen", "n_depth"]


def setting_of(cells: pd.DataFrame, model: str, cell: str, base: dict[str, Any]) -> str:
    """The setting text of cell ``cell`` of ``model`` as a stats table has it, or the id where it has none
    (a cell's id spells its parameters, so any build's row will do)."""
    found = cells[(cells["model"] == model) & (cells["cell"] == cell)]
    return setting_text(found.iloc[0], base) if len(found) else cell


def setting_text(row: pd.Series, base: dict[str, Any]) -> str:
    """What differs from the defaults, e.g. ``threads=2, batch_size=512``; ``defaults`` if nothing."""
    diffs = [f"{axis}={matrix.text(axis, row.get(axis))}" for axis in matrix.AXES
             if matrix.text(axis, row.get(axis)) != matrix.text(axis, matrix.value(base, axis))]
    return ", ".join(diffs) or "defaults"

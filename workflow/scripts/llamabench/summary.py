"""Rule ``summary``: cells -> one tidy table, a row per (cell, llama-bench test), failed cells included.

llama-bench's field names drift between versions (``flash_attn`` bool -> int ->
string, ``use_mmap`` -> ``load_mode``), so records are read defensively: the
cell's own parameters come from the cell record, and only the measurement
fields are taken from llama-bench's JSON. Rows are summary_row records, whose
order is the CSV's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from llamabench.core import axes, files, history, metrics, records
from llamabench.core.records import RecordError
from llamabench.core.status import Status
from llamabench.derive import samples, tables

MEASURES = ["avg_ts", "stddev_ts", "avg_ns", "stddev_ns"]
LLAMA_BENCH_FACTS = ["build_commit", "build_number", "cpu_info", "gpu_info", "backends", "model_type", "model_size",
                     "model_n_params", "test_time"]


def summary(smk: Any) -> None:
    """Rule ``summary``: results/summary.csv and the list of failed cell files."""
    paths = history.current_and_kept(smk.input.cells, "bench_cell", Path(smk.output.csv).parent)
    table = summarize(paths, smk.params.max_share)
    records.write_table(Path(smk.output.csv), table)
    files.write_lines(Path(smk.output.failed), tables.failed_paths("bench_cell", smk.input.cells, table))


def summarize(cell_paths: list[Path], max_share: float = 1.0) -> pd.DataFrame:
    """The summary table: a row per cell and test, one row for a cell that failed or could not be read.

    Kept records of earlier versions (core/history.py) get their history label as build name. A round that
    something else disturbed beyond ``max_share`` of the CPU is ``disturbed`` (derive/samples.py).
    """
    rows = []
    for path in sorted(cell_paths):
        try:
            rows += cell_rows(history.read(path, "bench_cell"), max_share)
        except RecordError as err:
            rows.append(history.unreadable("summary_row", "bench_cell", path, err))
    frame = records.frame(rows, "summary_row")
    return frame.sort_values(["build", "model", "cell", "test"], na_position="last").reset_index(drop=True)


def cell_rows(cell: dict[str, Any], max_share: float = 1.0) -> list[dict[str, Any]]:
    """The summary rows of one bench_cell record (read through history.read)."""
    run = cell["llama_bench"]
    disturbance = samples.disturbed(run, max_share)
    common = {
        "build": cell["build"]["name"],
        "history": cell.get("history", False),
        "model": cell["model"]["name"],
        "synthetic": bool(cell["model"]["origin"].get("synthetic")),
        "software_device": cell["build"].get("software_device"),
        "cell": cell["cell"],
        "base_cell": cell["base_cell"],
        "round": cell["round"],
        "status": Status.DISTURBED if run["status"] == Status.OK and disturbance else run["status"],
        "busy": samples.busy(cell["system"]),
        "disturbance": disturbance,
        "others_share": (run.get("interference") or {}).get("others_share"),
        **{axis: axes.value(cell["params"], axis) for axis in axes.names(axes.BENCHMARK)},
        **offload_columns(cell.get("offload")),
        "commit": cell["build"]["commit"],
        "options": " ".join(cell["build"]["options"]),
        "compiler": cell["build"]["compiler"],
        "cache_key": cell["build"]["cache_key"],
        "hostname": cell["host"]["hostname"],
        "cpu": cell["host"]["cpu"],
        "model_sha256": cell["model"]["sha256"],
        "peak_rss_mib": run["peak_rss_mib"],
        "peak_vram_mib": samples.peak_vram(run.get("samples")),
        "duration_s": run["duration_s"],
        "command_line": run["command_line"],
        "error": run.get("error"),
        "notes": "; ".join(cell.get("notes", [])) or None,
    }
    if not Status(run["status"]).measured:
        return [records.new("summary_row", common)]
    rows = []
    for rec in run["records"]:
        row = {**common, "test": metrics.test_of(rec)}
        row.update({key: rec.get(key) for key in MEASURES + LLAMA_BENCH_FACTS})
        row["gpu_info"] = rec.get("gpu_info") or None
        row["samples_ts"] = json.dumps(rec.get("samples_ts"))
        row.update(samples.energy_columns(run.get("samples"), rec))
        rows.append(row)
    estimate = tables.ttft_estimate({row["test"]: row for row in rows})
    return [records.new("summary_row", {**row, "ttft_estimate_ms": estimate}) for row in rows]


def offload_columns(offload: dict[str, Any] | None) -> dict[str, Any]:
    """Where the layers went (records from before placement was recorded have none)."""
    offload = offload or {}
    return {"offloaded_layers": offload.get("offloaded_layers"), "model_layers": offload.get("model_layers"),
            "op_offload": offload.get("op_offload")}

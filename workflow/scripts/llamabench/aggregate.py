"""Cells -> one tidy table: a row per (cell, llama-bench test), failed cells included.

llama-bench's field names drift between versions (``flash_attn`` bool -> int ->
string, ``use_mmap`` -> ``load_mode``), so records are read defensively:
the cell's own parameters come from our metadata, and only the measurement
fields are taken from the record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from llamabench import files, matrix

MEASURES = ["avg_ts", "stddev_ts", "avg_ns", "stddev_ns"]
RECORD_FACTS = ["build_commit", "build_number", "cpu_info", "backends", "model_type", "model_size",
                "model_n_params", "test_time"]
# Every column of summary.csv, in order, so that the table has the same shape
# even when no cell succeeded.
COLUMNS = ["build", "model", "cell", "status", "test", *MEASURES, "ttft_estimate_ms", "samples_ts",
           *matrix.AXES, "peak_rss_mib", "duration_s", "commit", "build_options", "compiler", "host", "cpu", "gpu",
           "model_sha256", *RECORD_FACTS, "command_line", "error"]


def test_name(n_prompt: int, n_gen: int) -> str:
    """llama-bench's naming: pp512, tg128, or pp512+tg128 for a combined test."""
    if n_prompt and n_gen:
        return f"pp{n_prompt}+tg{n_gen}"
    return f"pp{n_prompt}" if n_prompt else f"tg{n_gen}"


def cell_rows(cell: dict[str, Any]) -> list[dict[str, Any]]:
    run = cell["llama_bench"]
    common = {
        "build": cell["build"],
        "model": cell["model"],
        "cell": cell["cell"],
        "status": run["status"],
        **{axis: cell["params"][axis] for axis in matrix.AXES},
        "commit": cell["build_info"].get("commit"),
        "build_options": " ".join(cell["build_info"].get("options", [])),
        "compiler": cell["build_info"].get("compiler"),
        "host": cell["host"]["hostname"],
        "cpu": cell["host"]["cpu"],
        "model_sha256": cell["model_info"].get("sha256"),
        "peak_rss_mib": run.get("peak_rss_mib"),
        "duration_s": run.get("duration_s"),
        "command_line": run.get("command_line"),
        "error": run.get("error"),
    }
    if run["status"] != "ok":
        return [{**common, "test": None}]
    rows = []
    for rec in run["records"]:
        row = {**common, "test": test_name(int(rec.get("n_prompt", 0)), int(rec.get("n_gen", 0)))}
        row.update({key: rec.get(key) for key in MEASURES + RECORD_FACTS})
        row["gpu"] = rec.get("gpu_info") or None
        row["samples_ts"] = json.dumps(rec.get("samples_ts"))
        rows.append(row)
    add_ttft_estimate(rows)
    return rows


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


def summarize(cell_paths: list[Path]) -> pd.DataFrame:
    rows = [row for path in sorted(cell_paths) for row in cell_rows(files.read_json(path))]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["build", "model", "cell", "test"], na_position="last").reset_index(drop=True)


# What a cell measures, as opposed to how: best settings compare cells of one workload only.
WORKLOAD = ["n_prompt", "n_gen", "n_depth"]


def best_settings(summary: pd.DataFrame, base: dict[str, Any]) -> pd.DataFrame:
    """Per build and model: the best cell for tg, pp and the first-token estimate, with speed-up over defaults.

    Only cells with the defaults' workload (prompt, generation, depth) compete:
    a shorter prompt is not a better setting.
    """
    ok = summary[summary["status"] == "ok"].astype({"test": str})
    for axis in WORKLOAD:
        ok = ok[ok[axis].astype(str) == str(base[axis])]
    base_id = matrix.cell_id(base)
    goals = [
        ("tg t/s", ok[ok["test"].str.startswith("tg")], "avg_ts", True),
        ("pp t/s", ok[ok["test"].str.startswith("pp") & ~ok["test"].str.contains("+", regex=False)], "avg_ts", True),
        ("first-token latency estimate ms", ok.drop_duplicates(["build", "model", "cell"]).dropna(
            subset=["ttft_estimate_ms"]), "ttft_estimate_ms", False),
    ]
    rows = []
    for metric, frame, column, higher in goals:
        for (build, model), group in frame.groupby(["build", "model"]):
            best = group.loc[group[column].idxmax() if higher else group[column].idxmin()]
            ref = group[group["cell"] == base_id]
            ref_value = float(ref[column].iloc[0]) if len(ref) else None
            value = float(best[column])
            speedup = beyond_noise = None
            if ref_value:
                speedup = value / ref_value if higher else ref_value / value
                if column == "avg_ts" and base["repetitions"] > 1:  # one repetition has no stddev
                    # A "best" cell on a noisy machine may just be lucky: say whether the gain
                    # exceeds the combined standard deviation of the two measurements.
                    noise = (float(best["stddev_ts"]) ** 2 + float(ref["stddev_ts"].iloc[0]) ** 2) ** 0.5
                    beyond_noise = bool(abs(value - ref_value) > noise)
            rows.append({
                "build": build, "model": model, "metric": metric, "best_cell": best["cell"],
                "setting": setting_text(best, base), "value": round(value, 2),
                "defaults_value": round(ref_value, 2) if ref_value else None,
                "speedup_vs_defaults": round(speedup, 3) if speedup else None,
                "beyond_noise": beyond_noise,
            })
    return pd.DataFrame(rows, columns=["build", "model", "metric", "best_cell", "setting", "value",
                                       "defaults_value", "speedup_vs_defaults", "beyond_noise"])


def setting_text(row: pd.Series, base: dict[str, Any]) -> str:
    """What differs from the defaults, e.g. ``threads=2, batch_size=512``; ``defaults`` if nothing."""
    diffs = [f"{axis}={row[axis]}" for axis in matrix.AXES if str(row[axis]) != str(base[axis])]
    return ", ".join(diffs) or "defaults"

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

from llamabench import files, matrix, records
from llamabench.records import RecordError

MEASURES = ["avg_ts", "stddev_ts", "avg_ns", "stddev_ns"]
LLAMA_BENCH_FACTS = ["build_commit", "build_number", "cpu_info", "gpu_info", "backends", "model_type", "model_size",
                     "model_n_params", "test_time"]


def summary(smk: Any) -> None:
    """Rule ``summary``: results/summary.csv and the list of failed cell files."""
    cells = [Path(p) for p in smk.input.cells]
    table = summarize(cells)
    with files.atomic_path(Path(smk.output.csv)) as tmp:
        table.to_csv(tmp, index=False)
    write_failed(Path(smk.output.failed), cells, table)


def write_failed(target: Path, cell_paths: list[Path], table: pd.DataFrame) -> None:
    """The cell files whose run failed or could not be read, for ``snakemake --forcerun $(cat ...)``."""
    failed = table[~table["status"].isin(["ok", "skipped"])]
    bad = set(zip(failed["build"], failed["model"], failed["cell"]))
    with files.atomic_path(target) as tmp:
        tmp.write_text("".join(f"{p}\n" for p in sorted(cell_paths)
                               if (p.parent.parent.name, p.parent.name, p.stem) in bad))


def summarize(cell_paths: list[Path]) -> pd.DataFrame:
    """The summary table: a row per cell and test, one row for a cell that failed or could not be read."""
    rows = []
    for path in sorted(cell_paths):
        try:
            rows_of_cell = cell_rows(records.read(path, "bench_cell"))
        except RecordError as err:
            build, model = path.parent.parent.name, path.parent.name  # all an unreadable record leaves us
            rows_of_cell = [records.new("summary_row", {"build": build, "model": model, "cell": path.stem,
                                                      "status": "unreadable", "error": str(err)})]
        rows += rows_of_cell
    frame = pd.DataFrame(rows, columns=records.columns("summary_row"))
    return frame.sort_values(["build", "model", "cell", "test"], na_position="last").reset_index(drop=True)


def read(path: Path) -> pd.DataFrame:
    """results/summary.csv as the rules downstream of it read it."""
    return records.check_table(pd.read_csv(path), "summary_row", path)


def test_name(n_prompt: int, n_gen: int) -> str:
    """llama-bench's naming: pp512, tg128, or pp512+tg128 for a combined test."""
    if n_prompt and n_gen:
        return f"pp{n_prompt}+tg{n_gen}"
    return f"pp{n_prompt}" if n_prompt else f"tg{n_gen}"


def cell_rows(cell: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary rows of one bench_cell record."""
    run = cell["llama_bench"]
    common = {
        "build": cell["build"]["name"],
        "model": cell["model"]["name"],
        "cell": cell["cell"],
        "status": run["status"],
        **{axis: cell["params"][axis] for axis in matrix.AXES},
        "commit": cell["build"]["commit"],
        "options": " ".join(cell["build"]["options"]),
        "compiler": cell["build"]["compiler"],
        "cache_key": cell["build"]["cache_key"],
        "hostname": cell["host"]["hostname"],
        "cpu": cell["host"]["cpu"],
        "model_sha256": cell["model"]["sha256"],
        "peak_rss_mib": run["peak_rss_mib"],
        "duration_s": run["duration_s"],
        "command_line": run["command_line"],
        "error": run.get("error"),
    }
    if run["status"] != "ok":
        return [records.new("summary_row", common)]
    rows = []
    for rec in run["records"]:
        row = {**common, "test": test_name(int(rec.get("n_prompt", 0)), int(rec.get("n_gen", 0)))}
        row.update({key: rec.get(key) for key in MEASURES + LLAMA_BENCH_FACTS})
        row["gpu_info"] = rec.get("gpu_info") or None
        row["samples_ts"] = json.dumps(rec.get("samples_ts"))
        rows.append(row)
    add_ttft_estimate(rows)
    return [records.new("summary_row", row) for row in rows]


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


BEST_COLUMNS = ["build", "model", "metric", "best_cell", "setting", "value", "defaults_value", "speedup_vs_defaults",
                "beyond_noise"]

# What a cell measures, as opposed to how: best settings compare cells of one workload only.
WORKLOAD = ["n_prompt", "n_gen", "n_depth"]


def best_settings(table: pd.DataFrame, base: dict[str, Any]) -> pd.DataFrame:
    """Per build and model: the best cell for tg, pp and the first-token estimate, with speed-up over defaults.

    Only cells with the defaults' workload (prompt, generation, depth) compete:
    a shorter prompt is not a better setting.
    """
    ok = table[table["status"] == "ok"].astype({"test": str})
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
    return pd.DataFrame(rows, columns=BEST_COLUMNS)


def setting_text(row: pd.Series, base: dict[str, Any]) -> str:
    """What differs from the defaults, e.g. ``threads=2, batch_size=512``; ``defaults`` if nothing."""
    diffs = [f"{axis}={row[axis]}" for axis in matrix.AXES if str(row[axis]) != str(base[axis])]
    return ", ".join(diffs) or "defaults"

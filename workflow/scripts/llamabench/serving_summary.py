"""Serving cells -> one row each: TTFT, inter-token and end-to-end latency, throughput, and the bench gap.

Beside each cell's measured numbers stand its llama-bench partner cell's
first-token *estimate* (``n_prompt / pp + 1 / tg``) and generation speed, with
their ratios: how far what a user waits on a server is from what llama-bench
predicts. A percentile is reported only from ``min_requests`` requests up; below
that the maximum stands in its column and ``p90_is_max``/``p99_is_max`` say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from llamabench.core import axes, files, history, layout, metrics, phases, records
from llamabench.core.records import RecordError
from llamabench.core.status import Status
from llamabench.derive import latency, samples, sessions, tables


def serving_summary(smk: Any) -> None:
    """Rule ``serving_summary``: results/serving_summary.csv, every token's time (results/serving_tokens.jsonl) and
    every conversation turn's (results/serving_turns.csv), each cell's record read once for all three."""
    partners = {Path(serve): Path(bench) for serve, bench in smk.params.partners.items()}
    cells = read_cells(history.current_and_kept(smk.input.cells, "serve_cell", Path(smk.output.csv).parent))
    table = summarize(cells, partners, dict(smk.params.min_requests), smk.params.max_share)
    records.write_table(Path(smk.output.csv), table)
    files.write_lines(Path(smk.output.failed), tables.failed_paths("serve_cell", smk.input.cells, table))
    current = [cell for path, cell in cells.items() if not layout.kept_label(path) and isinstance(cell, dict)]
    files.write_lines(Path(smk.output.tokens), latency.jsonl(line for cell in current
                                                             for line in latency.token_lines(cell)))
    records.write_table(Path(smk.output.turns), turn_table(current))


def read_cells(paths: list[Path]) -> dict[Path, dict[str, Any] | RecordError]:
    """{path: its record as the aggregates see it (history.read), or why it cannot be read}."""
    found: dict[Path, dict[str, Any] | RecordError] = {}
    for path in paths:
        try:
            found[path] = history.read(path, "serve_cell")
        except RecordError as err:
            found[path] = err
    return found


def turn_table(cells: list[dict[str, Any]]) -> pd.DataFrame:
    """Every turn index of the measured conversation cells (derive/sessions.py), a row per cell, round and turn."""
    rows = [records.new("turn_row", row) for cell in cells if Status(cell["serving"]["status"]).measured
            for row in sessions.turn_rows(cell)]
    return records.frame(rows, "turn_row")


def summarize(cells: dict[Path, dict[str, Any] | RecordError], partners: dict[Path, Path],
              min_requests: dict[str, int], max_share: float = 1.0) -> pd.DataFrame:
    """A serving row per cell (a record that cannot be read: a row saying why)."""
    rows = []
    for path, cell in sorted(cells.items()):
        if isinstance(cell, RecordError):
            rows.append(history.unreadable("serving_row", "serve_cell", path, cell))
            continue
        partner = records.read(partners[path], "bench_cell") if path in partners else None
        rows.append(cell_row(cell, partner, min_requests, max_share))
    return records.frame(rows, "serving_row")


def cell_row(cell: dict[str, Any], partner: dict[str, Any] | None, min_requests: dict[str, int],
             max_share: float = 1.0) -> dict[str, Any]:
    run, params = cell["serving"], cell["params"]
    disturbance = samples.disturbed(run, max_share)
    row: dict[str, Any] = {
        "build": cell["build"]["name"], "history": cell.get("history", False), "model": cell["model"]["name"],
        "software_device": cell["build"].get("software_device"), "cell": cell["cell"],
        "base_cell": cell.get("base_cell", cell["cell"]), "round": cell.get("round", 1),
        "status": Status.DISTURBED if run["status"] == Status.OK and disturbance else run["status"],
        "disturbance": disturbance, "others_share": (run.get("interference") or {}).get("others_share"),
        "warmup_requests": len(run.get("warmup", [])) or None,
        **{axis: axes.value(params, axis, axes.SERVING) for axis in axes.names(axes.SERVING)},
        "hostname": cell["host"]["hostname"], "cpu": cell["host"]["cpu"], "commit": cell["build"]["commit"],
        "command_line": run["command_line"], "error": run["error"],
    }
    if partner is not None:
        row.update(partner_facts(partner))
    if not Status(run["status"]).measured:
        return records.new("serving_row", row)
    reqs = run["requests"]
    row.update(latency.request_metrics(reqs, run["wall_s"], min_requests), **sessions.cell_facts(reqs))
    sampled = run.get("samples") or {}
    used = samples.per_token(sampled.get("energy"), phases.REQUESTS, sum(r["timings"]["predicted_n"] for r in reqs))
    row.update(energy_j_per_token=used["j_per_token"], gpu_power_w=used["power_w"],
               peak_vram_mib=samples.peak_vram(sampled))
    if row.get("bench_ttft_estimate_ms"):
        row["ttft_measured_over_estimate"] = row["ttft_p50_ms"] / row["bench_ttft_estimate_ms"]
    if row.get("bench_tg_ts") and row["request_tps_p50"]:
        row["tps_serving_over_bench"] = row["request_tps_p50"] / row["bench_tg_ts"]
    return records.new("serving_row", row)


def partner_facts(partner: dict[str, Any]) -> dict[str, Any]:
    """The llama-bench partner's cell id, first-token estimate and tg, from its own records."""
    run = partner["llama_bench"]
    tests = {metrics.test_of(rec): rec for rec in run["records"]} if run["status"] == Status.OK else {}
    tg = next((rec for test, rec in tests.items() if metrics.test_kind(test) == metrics.TG), None)
    return {"bench_cell": partner["cell"], "bench_ttft_estimate_ms": tables.ttft_estimate(tests),
            "bench_tg_ts": tg["avg_ts"] if tg else None}

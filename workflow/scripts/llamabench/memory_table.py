"""Rule ``memory_table``: every benchmark and RPC cell's memory, predicted against used, per device and component.

The prediction is made here again from the records (each cell's runs, the GGUF
file's shape), not taken from the job: improving derive/memory.py rebuilds this
table and re-measures nothing. Components (weights, K/V, output, compute) are
compared with llama.cpp's logged buffer sizes, context by context (llama-bench
makes one context per test: the prompt test's, then the generation test's);
the host total with the peak RSS of the whole run, whose split into the model
file's mapped pages and anonymous memory is kept beside. llama-fit-params'
projection, recorded by the job for the largest context, is the second
predictor of the largest context's components. An RPC cell is predicted here
from its log (the workers it used and the free memory each reported, by which
llama.cpp splits the layers); its workers' buffers are compared one by one.

Errors and the tolerance are derive/memory_accuracy.py's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from llamabench.core import layout, records
from llamabench.core.records import RecordError
from llamabench.core.status import Status
from llamabench import plots
from llamabench.derive import buffers, memory, memory_fit
from llamabench.core import model_shape
from llamabench.derive.memory_accuracy import FIT_PARAMS, OURS, SLACK_MIB, TOLERANCE, error, within


def memory_table(smk: Any) -> None:
    """Rule ``memory_table``: results/memory.csv."""
    rows, flags = [], {}
    for path in sorted(map(Path, smk.input.cells)):
        cell = _read(path, "bench_cell")
        if cell and "memory" in cell:  # records written before predictions were recorded have none
            flags[cell["host"]["hostname"]] = cell["memory"]["runs"][0]["cpu_flags"] if cell["memory"]["runs"] else []
            rows += cell_rows(cell, _shape(cell))
    for path in sorted(map(Path, smk.input.rpc)):
        cell = _read(path, "rpc_cell")
        if cell:
            rows += rpc_rows(cell, _shape(cell), flags.get(cell["host"]["hostname"], []))
    table = records.frame(rows, "memory_row")
    records.write_table(Path(smk.output.csv), table)
    plot(table, Path(smk.output.png), Path(smk.output.svg))


def _read(path: Path, kind: str) -> dict[str, Any] | None:
    try:
        return records.read(path, kind)
    except RecordError:
        return None  # the summaries list an unreadable cell; it has no memory to compare


def _shape(cell: dict[str, Any]) -> dict[str, Any]:
    return model_shape.shape(Path(layout.path("model_file", model=cell["model"]["name"])), cell["model"]["sha256"])


def plot(table: pd.DataFrame, png: Path, svg: Path) -> None:
    """Predicted against used, MiB on log axes, one marker per component and predictor; the diagonal and the
    tolerance band around it."""
    fig, ax = plots.plt.subplots(figsize=(7, 6))
    compared = table.dropna(subset=["measured_mib"])
    compared = compared[(compared["measured_mib"] > 0) & (compared["predicted_mib"] > 0)]
    markers = {"weights": "s", "kv": "^", "output": "v", "compute": "o", "total": "*"}
    for (predictor, component), group in compared.groupby(["predictor", "component"]):
        ax.scatter(group["measured_mib"], group["predicted_mib"], marker=markers[component], alpha=0.7,
                   facecolors="none" if predictor == FIT_PARAMS else None, label=f"{component} ({predictor})")
    if not compared.empty:
        low, high = compared[["measured_mib", "predicted_mib"]].min().min(), compared[["measured_mib",
                                                                                       "predicted_mib"]].max().max()
        line = pd.Series([low / 2, high * 2])
        ax.plot(line, line, color="grey", linewidth=1)
        ax.fill_between(line, (line - (line * TOLERANCE).clip(lower=SLACK_MIB)).clip(lower=low / 4),
                        line + (line * TOLERANCE).clip(lower=SLACK_MIB), color="grey", alpha=0.15,
                        label=f"within {TOLERANCE:.0%} or {SLACK_MIB:.0f} MiB")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("used, MiB (logged buffer; peak RSS for the host total)")
    ax.set_ylabel("predicted, MiB")
    ax.set_title("memory per cell: predicted against used")
    plots.finish(ax, compared.empty, "no cell ran")
    plots.save(fig, png, svg, has_data=not compared.empty)


def cell_rows(cell: dict[str, Any], shape: dict[str, Any]) -> list[dict[str, Any]]:
    """A benchmark cell's rows: per context, device and component, each predictor against the logged size;
    the host's predicted peak against the run's peak RSS."""
    mem = cell["memory"]
    projection = mem.get("fit_params") or {}
    runs = mem["runs"]
    largest = max(range(len(runs)), key=lambda i: runs[i]["n_ctx"]) if runs else None
    extra = {largest: (FIT_PARAMS, projection.get("devices", {}))} if projection.get("devices") else {}
    return compared(cell, "bench_cell", cell["llama_bench"], runs, mem.get("logged") or [], shape, extra)


def rpc_rows(cell: dict[str, Any], shape: dict[str, Any], cpu_flags: list[str]) -> list[dict[str, Any]]:
    """An RPC cell's rows, predicted here from its log: the workers it used and the free memory each
    reported (llama.cpp splits the offloaded layers by it), and the buffers each was given."""
    if not cell["rpc"].get("llama_bench"):
        return []  # the workers never answered: nothing ran (the RPC summary lists it)
    text = Path(cell["log"]).read_text(errors="replace") if Path(cell["log"]).is_file() else ""
    workers = buffers.rpc_devices(text)
    offloaded = (cell.get("offload") or {}).get("offloaded_layers") or 0 if workers else 0
    runs = [{**run, "devices": workers} for run in memory_fit.bench_runs(cell["params"], offloaded, [], cpu_flags)]
    rows = compared(cell, "rpc_cell", cell["rpc"]["llama_bench"], runs, buffers.logged(text), shape, {})
    # A client's peak RSS is not predicted: while it uploads the weights it holds the whole mapped file and
    # staging copies besides (472 MiB for the 235 MiB default model).
    return [row for row in rows if row["component"] != "total" or not workers]


def compared(cell: dict[str, Any], kind: str, run: dict[str, Any], runs: list[dict[str, Any]],
             logged: list[dict[str, Any]], shape: dict[str, Any],
             extra: dict[int, tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per context, device and component, our prediction (and ``extra``: another predictor's, by context)
    against the logged size; the host's predicted peak against the run's peak RSS."""
    status = run["status"]
    common = {"kind": kind, "build": cell["build"]["name"], "model": cell["model"]["name"],
              "cell": cell["base_cell"], "status": status}
    try:
        predicted = [memory.predict(shape, one) for one in runs]
    except memory.Unpredictable:
        return []
    rows = []
    for index, prediction in enumerate(predicted):
        used = logged[index]["devices"] if index < len(logged) else {}
        n_ctx = runs[index]["n_ctx"]
        for device, parts in prediction["devices"].items():
            for component in memory.COMPONENTS:
                # a buffer llama.cpp did not log for a device it logged others for was not allocated
                measured = used.get(device, {}).get(component, 0.0) if used else None
                rows.append(_row(common, index, n_ctx, device, component, OURS, parts[component], measured))
                other, projected = extra.get(index, (None, {}))
                if (value := projected.get(device, {}).get(component)) is not None:
                    rows.append(_row(common, index, n_ctx, device, component, other, value, measured))
    if predicted:
        peak = max(p["resident"]["CPU"] for p in predicted)
        measured = run["peak_rss_mib"] if status in (Status.OK, Status.DISTURBED) or run.get("records") else None
        resident = run.get("resident_at_peak") or {}
        rows.append({**_row(common, None, max(r["n_ctx"] for r in runs), "CPU", "total", OURS, peak,
                            measured or None),
                     "file_mib": resident.get("file_mib"), "anonymous_mib": resident.get("anonymous_mib")})
    return rows


def _row(common: dict[str, Any], index: int | None, n_ctx: int, device: str, component: str, predictor: str,
         predicted: float, measured: float | None) -> dict[str, Any]:
    return {**common, "context": index, "n_ctx": n_ctx, "device": device, "component": component,
            "predictor": predictor, "predicted_mib": predicted, "measured_mib": measured,
            "error": error(predicted, measured), "within_tolerance": within(predicted, measured)}

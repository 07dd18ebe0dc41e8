"""``results/report.html``: one self-contained page (figures embedded) a user can mail around."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from llamabench import figures, files, matrix

TEMPLATE = Path(__file__).with_name("report.html.j2")

SUMMARY_COLUMNS = ["build", "model", "cell", "test", "avg_ts", "stddev_ts", "ttft_estimate_ms", "peak_rss_mib",
                   "threads", "batch_size", "ubatch_size", "n_gpu_layers", "flash_attn", "cache_type_k",
                   "cache_type_v", "n_depth", "repetitions"]


def table(frame: pd.DataFrame, columns: list[str] | None = None) -> str:
    if frame.empty:
        return "<p><em>none</em></p>"
    shown = frame[[c for c in (columns or frame.columns) if c in frame.columns]]
    return shown.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.2f}", border=0, classes="data")


def embed_png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def render(
    summary: pd.DataFrame,
    best: pd.DataFrame,
    figure_pngs: list[Path],
    baseline: dict[str, Any],
    builds: list[dict[str, Any]],
    models: list[dict[str, Any]],
    smokes: list[dict[str, Any]],
    source: dict[str, Any],
) -> str:
    ok = summary[summary["status"] == "ok"]
    failed = summary[summary["status"] != "ok"]
    gpus = sorted({g for g in ok["gpu"].dropna() if g})
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(TEMPLATE.read_text())
    return template.render(
        generated=files.now_iso(),
        host=files.host_info(),
        # The machine that measured, from the cells (the report may be rendered elsewhere).
        hosts=sorted(summary["host"].dropna().unique()),
        cpus=sorted(summary["cpu"].dropna().unique()),
        gpus=gpus,
        source=source,
        builds=builds,
        models=models,
        smokes=smokes,
        best_table=table(best),
        figures=[
            {"name": p.stem, "axis": matrix.FIGURES[p.stem][0],
             "src": embed_png(p) if figures.swept(summary, p.stem, baseline) else None}
            for p in figure_pngs
        ],
        summary_table=table(ok, SUMMARY_COLUMNS),
        failed=failed[["build", "model", "cell", "error", "command_line"]].to_dict("records"),
        n_cells=len(summary.drop_duplicates(["build", "model", "cell"])),
    )

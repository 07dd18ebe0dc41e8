"""``results/report.html``: one self-contained page (figures embedded) a user can mail around."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from llamabench.core import axes, files, plan, records
from llamabench.core import status
from llamabench.core.status import Status
from llamabench.derive import changes, tables

TEMPLATE = Path(__file__).with_name("report_html.html.j2")

SERVING_COLUMNS = ["build", "model", *axes.names(axes.SERVING),
                   "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "p90_is_max", "p99_is_max", "itl_p50_ms",
                   "itl_p99_ms", "e2e_p50_ms", "e2e_p99_ms", "request_tps_p50", "aggregate_tps",
                   "server_prompt_ms_p50", "overhead_ms_p50", "bench_ttft_estimate_ms", "ttft_measured_over_estimate",
                   "bench_tg_ts", "tps_serving_over_bench", "energy_j_per_token", "gpu_power_w", "peak_vram_mib"]
RPC_COLUMNS = ["build", "model", "topology", "link_rate", "devices", "workers", "pp_ts", "tg_ts", "local_pp_ts",
               "local_tg_ts", "pp_ratio_to_local", "tg_ratio_to_local", "load_mb", "mb_per_prompt_token",
               "mb_per_generated_token", "link_ceiling_tg_ts", "tg_fraction_of_ceiling", "pp_j_per_token",
               "tg_j_per_token", "peak_vram_mib"]
STATS_COLUMNS = ["build", "model", "cell", "test", "rounds", "rounds_used", "dropped_rounds", "mean_ts", "ci_low",
                 "ci_high", "pi_low", "pi_high", "cv", "noisy", "busy_rounds", "ceiling_ts", "roofline_fraction", "energy_j_per_token", "gpu_power_w",
                 "peak_vram_mib"]
COMPARISON_COLUMNS = ["comparison", "model", "test", "baseline_build", "baseline_cell", "candidate_build",
                      "candidate_cell", "paired_rounds", "rounds_used", "baseline_mean", "candidate_mean", "ratio",
                      "ratio_ci_low", "ratio_ci_high", "p_value", "p_adjusted", "better", "verdict"]
METRIC_COLUMNS = ["kind", "build", "model", "setting", "metric", "rounds", "rounds_used", "dropped_rounds", "mean",
                  "ci_low", "ci_high", "pi_low", "pi_high", "cv", "noisy"]
# What the report header counts, per kind of cell: rounds by outcome.
OUTCOMES = {"measured": (Status.OK, Status.DISTURBED), "disturbed": (Status.DISTURBED,),
            "failed": tuple(status.FAILURES), "skipped": (Status.SKIPPED,),
            "out of memory": (Status.OUT_OF_MEMORY, Status.PREDICTED_OUT_OF_MEMORY)}
SUMMARY_COLUMNS = ["round", "build", "model", "synthetic", "cell", "test", "avg_ts", "stddev_ts", "ttft_estimate_ms",
                   "energy_j_per_token", "gpu_power_w", "peak_rss_mib", "peak_vram_mib",
                   *(a for a in axes.names(axes.BENCHMARK) if a not in ("n_prompt", "n_gen")), "offloaded_layers",
                   "model_layers", "op_offload", "notes"]
MEMORY_COLUMNS = ["build", "model", "cell", "n_ctx", "device", "component", "predictor", "predicted_mib", "measured_mib",
                  "error", "file_mib", "anonymous_mib"]
MEMORY_WORST = 10  # the rows of memory.csv the report shows: the largest errors
FINDING_COLUMNS = ["statement", "value", "reference_value", "ratio", "ratio_ci_low", "ratio_ci_high", "significant",
                   "p_adjusted"]


# The answers the report opens with, in this order: the findings table's questions (findings.py) about the
# user's choices. How well the workflow's own estimates did (served TTFT against llama-bench's, the memory
# prediction) is told in the serving and memory sections.
ANSWERED = ("best_sweep", "best_setting", "tuning", "lowest_ttft", "throughput_under_ttft_limit", "load_capacity",
            "load_capacity_vs_build", "serving_vs_defaults", "rpc_vs_local", "largest_change", "bisect_culprit",
            "history_change")
# Where the report shows the evidence a finding names (its file under results/), by the file's start.
EVIDENCE = (("figures/comparison_", "versions"), ("figures/serving", "serving"), ("figures/rpc", "rpc"),
            ("comparisons.csv", "comparisons"), ("metrics.csv", "serving"), ("memory.csv", "memory"),
            ("tune/", "tuning"), ("load/", "load"), ("bisect/", "history"), ("history-studies/", "history"))


def answers(found: pd.DataFrame) -> list[dict[str, str]]:
    """The report's first section: each finding's sentence with a link to the section showing its evidence. A
    serving setting or a change point is an answer where its test found something (the table has the rest)."""
    shown = []
    for question in ANSWERED:
        rows = found[found["question"] == question]
        if question in ("serving_vs_defaults", "history_change"):
            rows = rows[rows["significant"].fillna(False).astype(bool) | (rows["answer"] == changes.NO_CHANGE)]
        for row in rows.itertuples():
            shown.append({"text": row.statement, "anchor": anchor(row.evidence)})
    return shown


def anchor(evidence: Any) -> str:
    """The report section that shows a finding's evidence: a figure's own heading, or the section of its kind."""
    text = evidence if isinstance(evidence, str) else ""
    for start, section in EVIDENCE:
        if text.startswith(start):
            return section
    if text.startswith("figures/"):
        return f"figure-{Path(text).stem}"
    return "findings"


def html_table(frame: pd.DataFrame, columns: list[str] | None = None, base: dict[str, Any] | None = None,
               cells: pd.DataFrame | None = None) -> str:
    """``frame`` as an HTML table; with ``base`` (the defaults cell), a cell id reads as the setting that differs
    from the defaults, the full id on hover."""
    if frame.empty:
        return "<p><em>none</em></p>"
    shown = frame[[c for c in (columns or frame.columns) if c in frame.columns]].copy()
    if base is not None:
        for column in shown.columns:
            if column in CELL_COLUMNS:
                shown[column] = [cell_label(frame.loc[i], column, base, cells) for i in shown.index]
            elif shown[column].dtype == object:
                shown[column] = shown[column].map(lambda v: html.escape(v) if isinstance(v, str) else v)
    return shown.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.2f}", border=0, classes="data",
                         escape=base is None)


CELL_COLUMNS = ("cell", "baseline_cell", "candidate_cell")


def cell_label(row: pd.Series, column: str, base: dict[str, Any], cells: pd.DataFrame | None) -> str:
    """A cell id as what it changes from the defaults (``threads=1``), the id itself in the hover text; a row
    without the axis columns is looked up in ``cells``, and an id found nowhere stays an id."""
    cid = row[column]
    if not isinstance(cid, str):
        return ""
    if column == "cell" and all(axis in row.index for axis in axes.names(axes.BENCHMARK)):
        text = tables.setting_text(row, base)
    elif cells is not None:
        text = tables.setting_of(cells, row["model"], cid, base)
    else:
        text = cid
    return f'<span class="setting" title="{html.escape(cid)}">{html.escape(text)}</span>'


def comparison_table(pairs: pd.DataFrame, cells: pd.DataFrame, name: str, base: dict[str, Any]) -> pd.DataFrame:
    """One named comparison, a row per cell and test both builds measured: both means with their CIs,
    the ratio with its CI, the verdict."""
    mine = tables.named_comparison(pairs, name)
    stats_of = cells.set_index(["build", "model", "cell", "test"])

    def mean_ci(build: str, model: str, cell: str, test: str) -> str:
        if (build, model, cell, test) not in stats_of.index:
            return ""
        row = stats_of.loc[(build, model, cell, test)]
        ci = f" [{row['ci_low']:.2f}, {row['ci_high']:.2f}]" if pd.notna(row["ci_low"]) else ""
        return f"{row['mean_ts']:.2f}{ci}"

    rows = []
    for r in mine.sort_values("ratio", na_position="last").itertuples():
        key = (r.model, r.baseline_cell, r.test)
        setting = tables.setting_of(cells, r.model, r.baseline_cell, base)
        ratio = "" if pd.isna(r.ratio) else f"{r.ratio:.3f}"
        if pd.notna(r.ratio_ci_low):
            ratio += f" [{r.ratio_ci_low:.3f}, {r.ratio_ci_high:.3f}]"
        rows.append({"baseline": r.baseline_build, "candidate": r.candidate_build, "model": r.model, "test": r.test,
                     "setting": setting, "baseline t/s [95 % CI]": mean_ci(r.baseline_build, *key),
                     "candidate t/s [95 % CI]": mean_ci(r.candidate_build, *key), "ratio [95 % CI]": ratio,
                     "p adjusted": r.p_adjusted, "verdict": r.verdict})
    return pd.DataFrame(rows)


def embed_png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def report_html(smk: Any) -> None:
    """Rule ``report_html``: results/report.html from the summary, the figures and every record."""
    page = render(
        table=records.read_table(Path(smk.input.csv), "summary_row"),
        cells=records.read_table(Path(smk.input.stats), "stats_row"),
        pairs=records.read_table(Path(smk.input.comparisons), "comparison_row"),
        bandwidth=records.read(smk.input.bandwidth, "bandwidth"),
        serving=records.read_table(Path(smk.input.serving), "serving_row"),
        rpc=records.read_table(Path(smk.input.rpc), "rpc_row"),
        rpc_smokes=[records.read(p, "rpc_smoke") for p in smk.input.rpc_smokes],
        found=records.read_table(Path(smk.input.findings), "finding_row"),
        metrics=records.read_table(Path(smk.input.metrics), "metric_row"),
        memory=records.read_table(Path(smk.input.memory), "memory_row"),
        memory_png=Path(smk.input.memory_figure),
        used=tables.used_statuses(smk.params.action),
        figure_pngs=[Path(p) for p in smk.input.figures],
        baseline=dict(smk.params.baseline),
        builds=[records.read(p, "build") for p in smk.input.builds],
        models=[records.read(p, "model") for p in smk.input.models],
        smokes=[records.read(p, "smoke") for p in smk.input.smokes],
        sources=[records.read(p, "source") for p in smk.input.sources],
        nodes=[records.read(p, "hardware") for p in smk.input.hardware],
        comparison_names=list(smk.params.comparisons),
        studies=[records.read(p, "tune") for p in smk.input.tune],
        sweeps=[(records.read(p, "load_sweep"), Path(png)) for p, png in zip(smk.input.load, smk.input.load_figures)],
        bisects=[(records.read(p, "bisect_study"), Path(png))
                 for p, png in zip(smk.input.bisect, smk.input.bisect_figures)],
        histories=[(records.read(p, "history_study"), Path(png))
                   for p, png in zip(smk.input.history, smk.input.history_figures)],
    )
    with files.atomic_path(Path(smk.output[0])) as tmp:
        tmp.write_text(page)


def render(
    table: pd.DataFrame,
    cells: pd.DataFrame,
    pairs: pd.DataFrame,
    bandwidth: dict[str, Any] | None,
    serving: pd.DataFrame,
    rpc: pd.DataFrame,
    rpc_smokes: list[dict[str, Any]],
    found: pd.DataFrame,
    metrics: pd.DataFrame,
    memory: pd.DataFrame,
    memory_png: Path | None,
    used: set[str],
    figure_pngs: list[Path],
    baseline: dict[str, Any],
    builds: list[dict[str, Any]],
    models: list[dict[str, Any]],
    smokes: list[dict[str, Any]],
    sources: list[dict[str, Any]],
    comparison_names: list[str],
    nodes: list[dict[str, Any]] | None = None,
    studies: list[dict[str, Any]] | None = None,
    sweeps: list[tuple[dict[str, Any], Path]] | None = None,
    bisects: list[tuple[dict[str, Any], Path]] | None = None,
    histories: list[tuple[dict[str, Any], Path]] | None = None,
) -> str:
    ok = table[table["status"] == Status.OK]
    now = tables.current(table)
    failed = tables.failed_rows(now)
    skipped = now[now["status"] == Status.SKIPPED]
    serving_failed = serving[~serving["status"].map(lambda s: Status(s).measured).astype(bool)]
    kinds = {"benchmark": now.drop_duplicates(["build", "model", "cell"]), "serving": tables.current(serving),
             "RPC": tables.current(rpc)}
    disturbed = pd.concat([frame.assign(kind=kind)[frame["status"] == Status.DISTURBED]
                           for kind, frame in kinds.items()])
    pngs = {p.stem: p for p in figure_pngs}
    gpus = sorted({g for g in ok["gpu_info"].dropna() if g})
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(TEMPLATE.read_text())
    return template.render(
        generated=files.now_iso(),
        host=files.host_info(),
        # The machine that measured, from the cells (the report may be rendered elsewhere).
        hosts=sorted(table["hostname"].dropna().unique()),
        cpus=sorted(table["cpu"].dropna().unique()),
        gpus=gpus,
        sources=sources,
        nodes=nodes or [],
        builds=builds,
        kept=sorted(set(table.loc[table["history"].astype(bool), "build"])),
        version_comparisons=[
            {"name": name, "table": html_table(comparison_table(pairs, cells, name, baseline)),
             "src": embed_png(pngs[f"comparison_{name}"]) if f"comparison_{name}" in pngs else None}
            for name in comparison_names
        ],
        models=models,
        smokes=smokes,
        best_table=html_table(tables.figures_table(found)),
        answers=answers(found),
        counts=[{"kind": kind, **{name: int(frame["status"].isin(statuses).sum()) for name, statuses in
                                  OUTCOMES.items()}} for kind, frame in kinds.items()],
        disturbed=disturbed[["kind", "build", "model", "cell", "disturbance"]].to_dict("records"),
        disturbed_dropped=Status.DISTURBED not in used,
        serving_findings=html_table(found[found["question"] == "serving_vs_defaults"], FINDING_COLUMNS),
        metrics_table=html_table(metrics, METRIC_COLUMNS),
        figures=[
            {"name": name, "axis": axis, "src": embed_png(pngs[name]) if tables.swept(cells, name, baseline) else None}
            for name, (axis, _, _) in axes.FIGURES.items() if name in pngs
        ],
        serving_figures=[embed_png(pngs[name]) for name in plan.SERVING_FIGURES if name in pngs],
        serving_table=html_table(tables.per_cell(serving, used), SERVING_COLUMNS),
        serving_failed=serving_failed[["build", "model", "cell", "error", "command_line"]].to_dict("records"),
        n_serving=len(serving),
        stats_table=html_table(cells, STATS_COLUMNS, baseline),
        comparison_table=html_table(pairs.sort_values("p_adjusted", na_position="last"), COMPARISON_COLUMNS,
                                    baseline, cells),
        noisy=cells[cells["noisy"].astype(bool)][["build", "model", "cell", "test", "cv"]].to_dict("records"),
        busy=ok.dropna(subset=["busy"]).drop_duplicates("cell")[["build", "model", "cell", "busy"]].to_dict("records"),
        bandwidth=bandwidth,
        rounds=int(cells["rounds"].max()) if len(cells) else 0,
        rpc_figures=[embed_png(pngs[name]) for name in plan.RPC_FIGURES if name in pngs],
        rpc_table=html_table(tables.per_cell(rpc, used), RPC_COLUMNS),
        rpc_not_ok=rpc[~rpc["status"].map(lambda s: Status(s).measured).astype(bool)][["topology", "devices", "link_rate", "status", "error"]].to_dict(
            "records"),
        rpc_smokes=rpc_smokes,
        n_rpc=len(rpc),
        summary_table=html_table(ok, SUMMARY_COLUMNS, baseline),
        failed=failed[["build", "model", "cell", "error", "command_line"]].to_dict("records"),
        skipped=skipped[["build", "model", "cell", "error"]].to_dict("records"),
        out_of_memory=now[now["status"] == Status.OUT_OF_MEMORY][["build", "model", "cell", "error"]].to_dict("records"),
        predicted_out_of_memory=now[now["status"] == Status.PREDICTED_OUT_OF_MEMORY][
            ["build", "model", "cell", "error"]].drop_duplicates("cell").to_dict("records"),
        memory_findings=html_table(found[found["question"] == "memory_prediction"], FINDING_COLUMNS),
        memory_worst=html_table(memory.dropna(subset=["error"]).assign(abs_error=lambda f: f["error"].abs())
                                .sort_values("abs_error", ascending=False).head(MEMORY_WORST), MEMORY_COLUMNS),
        memory_src=embed_png(memory_png) if memory_png else None,
        studies=studies or [],
        sweeps=[{**record, "src": embed_png(png)} for record, png in sweeps or []],
        load_pairs=pairs[pairs["comparison"] == "load capacity"].to_dict("records"),
        bisects=[{**record, "src": embed_png(png)} for record, png in bisects or []],
        histories=[{**record, "src": embed_png(png)} for record, png in histories or []],
    )

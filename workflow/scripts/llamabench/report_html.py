"""``results/report.html``: one self-contained page (figures embedded) a user can mail around."""

from __future__ import annotations

import base64
import html
import math
import shlex
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from llamabench.core import axes, comparisons, files, matrix, plan, questions, records, status
from llamabench.core.metrics import TG_TS
from llamabench.core.status import Status
from llamabench import plots
from llamabench.derive import tables

TEMPLATE = Path(__file__).with_name("report_html.html.j2")
QUALITY_COLUMNS = ["build", "model", "setting", "status", "label", "kld_mean", "kld_ci_low", "kld_ci_high", "kld_p99",
                   "same_top", "ppl_ratio", "tg_ratio", "tg_ratio_ci_low", "tg_ratio_ci_high", "tg_verdict",
                   "predicted_mib", "pareto",
                   "error"]

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
                 "ci_high", "pi_low", "pi_high", "cv", "noisy", "busy_rounds", "ceiling_ts", "roofline_fraction",
                 "energy_j_per_token", "gpu_power_w", "peak_vram_mib"]
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
MEMORY_COLUMNS = ["build", "model", "cell", "n_ctx", "device", "component", "predictor", "predicted_mib",
                  "measured_mib", "error", "file_mib", "anonymous_mib"]
MEMORY_WORST = 10  # the rows of memory.csv the report shows: the largest errors
FINDING_COLUMNS = ["statement", "value", "reference_value", "ratio", "ratio_ci_low", "ratio_ci_high", "significant",
                   "p_adjusted"]
# The table of every finding: what it is about, the answer (its cell on hover), the numbers and the test.
EVERY_FINDING_COLUMNS = ["question", "build", "model", "label", "answer", "value", "value_ci_low", "value_ci_high",
                         "reference_value", "ratio", "ratio_ci_low", "ratio_ci_high", "significant", "p_adjusted",
                         "verdict"]

# Where the report shows the evidence a finding names (its file under results/), by the file's start.
EVIDENCE = (("quality.csv", "quality"), ("figures/comparison_", "versions"), ("figures/serving", "serving"),
            ("figures/rpc", "rpc"),
            ("comparisons.csv", "comparisons"), ("metrics.csv", "serving"), ("memory.csv", "memory"),
            ("tune/", "tuning"), ("load/", "load"), ("bisect/", "history"), ("history-studies/", "history"))
BAR_WIDTH, BAR_HEIGHT = 120, 12  # px of an answer's interval bar


def answer_groups(found: pd.DataFrame, sections: set[str]) -> list[dict[str, Any]]:
    """The first screen's answers by group (core/questions.py: each question's group, groups in their order,
    questions in registry order within one), each finding's sentence with its interval bar and a link to its
    evidence. An answer a test found nothing for (significant false: no setting beats the defaults, no
    change) is folded under its group, so the screen opens with what was found; a group without answers is left
    out. ``sections``: the ids of the sections and figures the page shows, where an evidence link may lead."""
    groups: dict[str, dict[str, Any]] = {title: {"title": title, "found": [], "quiet": []}
                                         for title in questions.GROUPS}
    for question in questions.QUESTIONS.values():
        if question.group is None:
            continue
        for row in found[found["question"] == question.name].to_dict("records"):
            quiet = pd.notna(row["significant"]) and not row["significant"]
            groups[question.group]["quiet" if quiet else "found"].append(
                {"text": row["statement"], "anchor": anchor(row["evidence"], sections), "bar": interval_bar(row)})
    return [group for group in groups.values() if group["found"] or group["quiet"]]


def interval_bar(row: dict[str, Any]) -> str:
    """A finding's point and 95 % interval as a small inline SVG, so its uncertainty shows at a glance: a ratio on
    a log axis around 1× (the tick), a value on an axis around itself; empty where the row has no interval."""
    ratio = [row.get(k) for k in ("ratio", "ratio_ci_low", "ratio_ci_high")]
    value = [row.get(k) for k in ("value", "value_ci_low", "value_ci_high")]
    if all(_number(x) and x > 0 for x in ratio):
        point, low, high = (math.log(x) for x in ratio)
        half = max(abs(low), abs(high), abs(point), math.log(1.05)) * 1.15
        title = f"{ratio[0]:.3g}× (95 % CI {ratio[1]:.3g}-{ratio[2]:.3g}×; log axis, tick at 1×)"
        return _bar(point, low, high, 0.0, half, title)
    if all(_number(x) for x in value):
        point, low, high = value
        half = max(abs(point) * 0.25, (high - point) * 1.2, (point - low) * 1.2) or 1.0
        title = f"{point:.3g} (95 % CI {low:.3g}-{high:.3g})"
        return _bar(0.0, low - point, high - point, -point if abs(point) < half else None, half, title)
    return ""


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _bar(point: float, low: float, high: float, tick: float | None, half: float, title: str) -> str:
    """The SVG of an interval on an axis from -half to half (the point at 0 for a value): grey where it holds the
    tick (1× for a ratio, 0 for a value), blue where it excludes it."""
    def x(v: float) -> float:
        return round(BAR_WIDTH / 2 + max(-1.0, min(1.0, v / half)) * (BAR_WIDTH / 2 - 3), 1)

    mid = BAR_HEIGHT / 2
    holds = tick is not None and low <= tick <= high
    mark = "" if tick is None else (f'<line x1="{x(tick)}" x2="{x(tick)}" y1="0" y2="{BAR_HEIGHT}" '
                                    f'stroke="#777"/>')
    return (f'<svg class="bar" width="{BAR_WIDTH}" height="{BAR_HEIGHT}" role="img" aria-label="{html.escape(title)}">'
            f"<title>{html.escape(title)}</title>"
            f'<line x1="2" x2="{BAR_WIDTH - 2}" y1="{mid}" y2="{mid}" stroke="#ddd"/>{mark}'
            f'<rect x="{x(low)}" y="{mid - 3}" width="{max(1.0, x(high) - x(low))}" height="6" rx="2" '
            f'fill="{"#bbb" if holds else "#58c"}"/>'
            f'<circle cx="{x(point)}" cy="{mid}" r="2.5" fill="#124"/></svg>')


def recommended(found: pd.DataFrame, studies: list[dict[str, Any]], ok: pd.DataFrame,
                base: dict[str, Any]) -> list[dict[str, str]]:
    """The command lines the first screen opens with, each with why: a tuning study's winner's where one exists,
    else the fastest setting the findings support as significantly faster than the defaults for generation (the
    llama-bench line it was measured with), else the defaults' line; none where nothing was measured."""
    tuned = [{"why": f"Tuning study {study['study']}, {r['build']} / {r['model']}: {r['sentence']}",
              "lines": f"{r['llama_server']}\n{r['llama_bench']}"}
             for study in studies for r in study["results"] if r.get("llama_server")]
    if tuned:
        return tuned
    faster = found[(found["question"] == questions.BEST_SETTING.name) & (found["metric"] == TG_TS.label)
                   & found["significant"].fillna(False).astype(bool)]
    if len(faster):
        best = faster.loc[faster["value"].astype(float).idxmax()]
        why = (f"{best['answer']} ({best['build']} / {best['model']}): the fastest setting for generation, "
               f"{best['ratio']:.2f}× the defaults, significantly.")
        return [{"why": why, "lines": command_of(ok, best["build"], best["model"], best["cell"])}]
    defaults = ok[ok["base_cell"] == matrix.cell_id(base)]
    if defaults.empty:
        return []
    first = defaults.iloc[0]
    return [{"why": "the defaults: nothing measured here beats them.",
             "lines": command_of(ok, first["build"], first["model"], first["base_cell"])}]


def command_of(ok: pd.DataFrame, build: str, model: str, cell: str) -> str:
    """The llama-bench command line a measured cell ran (in any of its rounds: round 1 may have been disturbed)."""
    mine = ok[(ok["build"] == build) & (ok["model"] == model) & (ok["base_cell"] == cell)]["command_line"].dropna()
    return as_typed(mine.iloc[0]) if len(mine) else f"# no command line recorded for {build} / {model} / {cell}"


# The flags the workflow adds for its own records (llama-bench's JSON on stdout, its progress markers and the
# buffers' log on stderr): a user running the line by hand wants llama-bench's own table.
OWN_FLAGS = {"--progress": 0, "-v": 0, "-o": 1}


def as_typed(line: str) -> str:
    """A recorded command line as a user would type it: the workflow's own output flags left out."""
    words, kept = shlex.split(line), []
    skip = 0
    for word in words:
        if skip:
            skip -= 1
        elif word in OWN_FLAGS:
            skip = OWN_FLAGS[word]
        else:
            kept.append(word)
    return shlex.join(kept)


def anchor(evidence: Any, sections: set[str]) -> str:
    """The report section that shows a finding's evidence: a figure's own heading, or the section of its kind,
    where the page shows it (``sections``); the table of every finding otherwise."""
    text = evidence if isinstance(evidence, str) else ""
    shown = next((section for start, section in EVIDENCE if text.startswith(start)),
                 f"figure-{Path(text).stem}" if text.startswith("figures/") else "findings")
    return shown if shown in sections else "findings"


def html_table(frame: pd.DataFrame, columns: list[str] | None = None,
               names: dict[tuple[str, str], str] | None = None) -> str:
    """``frame`` as an HTML table; with ``names`` (setting_names), a cell id reads as the setting that differs
    from the defaults, and a finding's answer shows its cell, the full id on hover."""
    if frame.empty:
        return "<p><em>none</em></p>"
    shown = frame[[c for c in (columns or frame.columns) if c in frame.columns]].copy()
    for column in shown.columns:
        if names is not None and column in CELL_COLUMNS:
            shown[column] = [cell_label(frame.loc[i, "model"], frame.loc[i, column], names) for i in shown.index]
        elif column == "answer" and "cell" in frame:
            shown[column] = [hover(frame.loc[i, column], frame.loc[i, "cell"]) for i in shown.index]
        elif shown[column].dtype == object:
            shown[column] = shown[column].map(lambda v: html.escape(v) if isinstance(v, str) else
                                              "" if v is None or v is pd.NA else v)
    return shown.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.3g}", border=0, classes="data",
                         escape=False)


CELL_COLUMNS = ("cell", "baseline_cell", "candidate_cell")


def setting_names(table: pd.DataFrame, metrics: pd.DataFrame, base: dict[str, Any]) -> dict[tuple[str, str], str]:
    """Every cell of the run in words, by model and cell id: a benchmark cell as the setting it changes from the
    defaults (``threads=1``), a serving or RPC cell as metrics.csv names it."""
    names = {(row["model"], row["cell"]): tables.setting_text(row, base)
             for _, row in table.drop_duplicates(["model", "cell"]).iterrows()}
    named = metrics.dropna(subset=["setting"]).drop_duplicates(["model", "cell"])
    names.update({(row["model"], row["cell"]): row["setting"] for _, row in named.iterrows()})
    return names


def cell_label(model: str, cid: Any, names: dict[tuple[str, str], str]) -> str:
    """A cell id as what it changes from the defaults, the id itself in the hover text; an id found nowhere
    stays an id."""
    return hover(names.get((model, cid), cid), cid) if isinstance(cid, str) else ""


def hover(text: Any, cid: Any) -> str:
    """``text`` with the cell id ``cid`` shown on hover (none where the row names no cell)."""
    if not isinstance(text, str):
        return ""
    if not isinstance(cid, str):
        return html.escape(text)
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


def embed_png(path: Path | None) -> str | None:
    """A figure as a data URL, so the page is one file; none for a figure with nothing to draw (plots.drawn)."""
    if path is None or not plots.drawn(path):
        return None
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
        sweeps=[(records.read(p, "load_sweep"), Path(png), Path(turns)) for p, png, turns in
                zip(smk.input.load, smk.input.load_figures, smk.input.load_turn_figures)],
        bisects=[(records.read(p, "bisect_study"), Path(png))
                 for p, png in zip(smk.input.bisect, smk.input.bisect_figures)],
        histories=[(records.read(p, "history_study"), Path(png))
                   for p, png in zip(smk.input.history, smk.input.history_figures)],
        quality=records.read_table(Path(smk.input.quality), "quality_row"),
        quality_png=Path(smk.input.quality_figure),
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
    sweeps: list[tuple[dict[str, Any], Path, Path]] | None = None,
    bisects: list[tuple[dict[str, Any], Path]] | None = None,
    histories: list[tuple[dict[str, Any], Path]] | None = None,
    quality: pd.DataFrame | None = None,
    quality_png: Path | None = None,
) -> str:
    ok = table[table["status"] == Status.OK]
    now = tables.current(table)
    failed = tables.failed_rows(now)
    skipped = now[now["status"] == Status.SKIPPED]
    serving_failed = serving[~serving["status"].map(lambda s: Status(s).measured).astype(bool)]
    kinds = {"benchmark": now.drop_duplicates(["build", "model", "cell"]), "serving": tables.current(serving),
             "RPC": tables.current(rpc)}
    names = setting_names(table, metrics, baseline)
    disturbed = pd.concat([frame.assign(kind=kind)[frame["status"] == Status.DISTURBED]
                           for kind, frame in kinds.items()])
    pngs = {p.stem: p for p in figure_pngs}
    shown_figures = [{"name": name, "src": src} for name in axes.FIGURES if (src := embed_png(pngs.get(name)))]
    # The sections the page shows (the template's conditions): a section without data is left out.
    sections = {"findings", "comparisons", *(f"figure-{f['name']}" for f in shown_figures),
                *(name for name, data in (("versions", comparison_names or table["history"].astype(bool).any()),
                                          ("serving", len(serving)), ("rpc", len(rpc)), ("memory", len(memory)),
                                          ("tuning", studies), ("load", sweeps), ("history", bisects or histories),
                                          ("quality", quality is not None and len(quality)))
                  if data)}
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
             "src": embed_png(pngs.get(f"comparison_{name}"))}
            for name in comparison_names
        ],
        models=models,
        smokes=smokes,
        commands=recommended(found, studies or [], ok, baseline),
        groups=answer_groups(found, sections),
        sections=sections,
        findings_table=html_table(found, EVERY_FINDING_COLUMNS),
        counts=[{"kind": kind, **{name: int(frame["status"].isin(statuses).sum()) for name, statuses in
                                  OUTCOMES.items()}} for kind, frame in kinds.items() if len(frame)],
        disturbed=listed(disturbed, names, "disturbance"),
        disturbed_dropped=Status.DISTURBED not in used,
        serving_findings=html_table(found[found["question"] == questions.SERVING_VS_DEFAULTS.name], FINDING_COLUMNS),
        metrics_table=html_table(metrics, METRIC_COLUMNS),
        figures=shown_figures,
        serving_figures=[src for name in plan.SERVING_FIGURES if (src := embed_png(pngs.get(name)))],
        serving_table=html_table(tables.per_cell(serving, used), SERVING_COLUMNS),
        serving_failed=serving_failed[["build", "model", "cell", "error", "command_line"]].to_dict("records"),
        n_serving=len(serving),
        stats_table=html_table(cells, STATS_COLUMNS, names),
        comparison_table=html_table(pairs.sort_values("p_adjusted", na_position="last"), COMPARISON_COLUMNS, names),
        noisy=listed(cells[cells["noisy"].astype(bool)].assign(
            why=lambda f: f["test"] + ", cv " + f["cv"].map("{:.3f}".format)), names, "why"),
        busy=listed(ok.dropna(subset=["busy"]).drop_duplicates("cell"), names, "busy"),
        bandwidth=bandwidth,
        rounds=int(cells["rounds"].max()) if len(cells) else 0,
        rpc_figures=[src for name in plan.RPC_FIGURES if (src := embed_png(pngs.get(name)))],
        rpc_table=html_table(tables.per_cell(rpc, used), RPC_COLUMNS),
        rpc_not_ok=rpc[~rpc["status"].map(lambda s: Status(s).measured).astype(bool)][
            ["topology", "devices", "link_rate", "status", "error"]].to_dict("records"),
        rpc_smokes=rpc_smokes,
        n_rpc=len(rpc),
        summary_table=html_table(ok, SUMMARY_COLUMNS, names),
        failed=failed[["build", "model", "cell", "error", "command_line"]].to_dict("records"),
        skipped=skipped[["build", "model", "cell", "error"]].to_dict("records"),
        out_of_memory=now[now["status"] == Status.OUT_OF_MEMORY][["build", "model", "cell", "error"]].to_dict(
            "records"),
        predicted_out_of_memory=now[now["status"] == Status.PREDICTED_OUT_OF_MEMORY][
            ["build", "model", "cell", "error"]].drop_duplicates("cell").to_dict("records"),
        memory_findings=html_table(found[found["question"] == questions.MEMORY_PREDICTION.name], FINDING_COLUMNS),
        memory_worst=html_table(memory.dropna(subset=["error"]).assign(abs_error=lambda f: f["error"].abs())
                                .sort_values("abs_error", ascending=False).head(MEMORY_WORST), MEMORY_COLUMNS),
        memory_src=embed_png(memory_png),
        studies=studies or [],
        sweeps=[{**record, "src": embed_png(png), "turns_src": embed_png(turns)} for record, png, turns in
                sweeps or []],
        load_pairs=pairs[pairs["comparison"] == comparisons.LOAD_CAPACITY.name].to_dict("records"),
        bisects=[{**record, "src": embed_png(png)} for record, png in bisects or []],
        histories=[{**record, "src": embed_png(png)} for record, png in histories or []],
        quality_src=embed_png(quality_png),
        quality_findings=html_table(found[found["question"] == questions.QUALITY_COST.name], FINDING_COLUMNS),
        quality_table=html_table(quality, QUALITY_COLUMNS) if quality is not None else "",
    )


def listed(frame: pd.DataFrame, names: dict[tuple[str, str], str], why: str) -> list[dict[str, str]]:
    """Cells the first screen counts and lists behind a fold (noisy, disturbed, started busy): where, the cell in
    words with its id on hover, and why it is listed."""
    return [{"where": " / ".join(str(row[k]) for k in ("kind", "build", "model") if k in row),
             "cell": cell_label(row["model"], row["cell"], names), "why": str(row[why])}
            for _, row in frame.iterrows()]

"""Speed vs one parameter, one line per build/model, error bars from llama-bench's stddev.

Each figure is a slice through the defaults: the swept axis varies and
every other axis keeps its default value, which is what a named group
produces, so points on one line differ in that one parameter only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from llamabench.core import axes, metrics, options, records
from llamabench.derive import sessions, statistics, tables
from llamabench.plots import empty_note, finish, plt, save


def figures(smk: Any) -> None:
    """Rule ``figures``: one PNG and SVG per figure."""
    every_cell = records.read_table(Path(smk.input.stats), "stats_row")
    pairs = records.read_table(Path(smk.input.comparisons), "comparison_row")
    # Sweeps show the current builds; kept versions appear in the comparisons only.
    cells = tables.current(every_cell)
    used = tables.used_statuses(smk.params.action)
    serving = tables.per_cell(tables.current(records.read_table(Path(smk.input.serving), "serving_row")), used)
    rpc = tables.per_cell(tables.current(records.read_table(Path(smk.input.rpc), "rpc_row")), used)
    base = dict(smk.params.baseline)
    for name in smk.params.comparisons:
        plot_comparison(pairs, every_cell, name, base, Path(smk.output[f"comparison_{name}_png"]),
                        Path(smk.output[f"comparison_{name}_svg"]))
    for name in axes.FIGURES:
        plot(cells, name, base, Path(smk.output[f"{name}_png"]), Path(smk.output[f"{name}_svg"]))
    plot_serving_ttft(serving, Path(smk.output.serving_ttft_png), Path(smk.output.serving_ttft_svg))
    plot_serving_latency(serving, Path(smk.output.serving_latency_png), Path(smk.output.serving_latency_svg))
    plot_rpc(rpc, Path(smk.output.rpc_png), Path(smk.output.rpc_svg))
    turns = sessions.used_turns(records.read_table(Path(smk.input.turns), "turn_row"),
                                tables.current(records.read_table(Path(smk.input.serving), "serving_row")), used)
    plot_serving_turns(turns, Path(smk.output.serving_turns_png), Path(smk.output.serving_turns_svg))


def plot_comparison(pairs: pd.DataFrame, cells: pd.DataFrame, name: str, base: dict[str, Any], png: Path,
                    svg: Path) -> None:
    """Candidate / baseline per cell and test with its 95 % CI, sorted; coloured by the verdict."""
    rows = tables.named_comparison(pairs, name).dropna(subset=["ratio_ci_low", "ratio_ci_high"]).sort_values("ratio")
    colors = {statistics.IMPROVED: "tab:green", statistics.REGRESSED: "tab:red"}
    fig, ax = plt.subplots(figsize=(11, max(2.5, 0.32 * len(rows) + 1.4)))
    pairs_shown = sorted(set(zip(rows["candidate_build"], rows["baseline_build"])))
    one_pair = len(pairs_shown) == 1
    labels = [("" if one_pair else f"{r.candidate_build} vs {r.baseline_build} · ") + f"{r.model} · {r.test} · "
              + tables.setting_of(cells, r.model, r.baseline_cell, base) for r in rows.itertuples()]
    ax.errorbar(rows["ratio"], range(len(rows)), xerr=[rows["ratio"] - rows["ratio_ci_low"],
                rows["ratio_ci_high"] - rows["ratio"]], fmt="none", ecolor="grey", capsize=3)
    ax.scatter(rows["ratio"], range(len(rows)), c=[colors.get(v, "grey") for v in rows["verdict"]], zorder=3)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("candidate / baseline tokens/s, 95 % CI over paired rounds (green: improved, red: regressed)")
    ax.set_title(f"comparison '{name}'" + (f": {pairs_shown[0][0]} vs {pairs_shown[0][1]}" if one_pair else ""))
    ax.grid(alpha=0.3, axis="x")
    if rows.empty:
        empty_note(ax, "no cell measured on both builds over two or more rounds")
    save(fig, png, svg, has_data=not rows.empty)


# An axis whose figure is drawn over what the cells did rather than what they asked for.
X_LABELS = {"n_gpu_layers": "layers offloaded to the GPU (of the block count + 1)"}


def x_values(data: pd.DataFrame, x_axis: str) -> pd.Series:
    """The numbers to draw along x: for n_gpu_layers the layers actually offloaded (``all`` and ``50%`` are
    resolved per model; 99 on an 18-layer model is 19), the value asked for where a record predates that."""
    asked = pd.to_numeric(data[x_axis], errors="coerce")
    if x_axis == "n_gpu_layers" and "offloaded_layers" in data:
        return pd.to_numeric(data["offloaded_layers"], errors="coerce").fillna(asked)
    return asked


def plot(cells: pd.DataFrame, name: str, base: dict[str, Any], png: Path, svg: Path) -> None:
    """Draw figure ``name`` as PNG and SVG: prompt processing left, text generation right; error bars
    are the 95 % CI over rounds (the repetitions' stddev where a cell has one round)."""
    x_axis, split, log_x = axes.FIGURES[name]
    data = tables.sweep(cells, {x_axis, split} - {None}, base)
    data = data.assign(x=x_values(data, x_axis))
    fig, panels = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (kind, label) in zip(panels, [(metrics.PP, "prompt processing"), (metrics.TG, "text generation")]):
        part = tables.single_tests(data)
        part = part[part["kind"] == kind]
        keys = ["build", "model"] + ([split] if split else [])
        for key, line in part.groupby(keys):
            line = line.sort_values("x")
            text = " / ".join(str(k) for k in key[:2]) + (f", {split}={key[2]}" if split else "")
            ax.errorbar(line["x"], line["mean_ts"], yerr=[line["err_low"], line["err_high"]], marker="o", capsize=3,
                        label=text)
        ax.set_title(f"{label} vs {x_axis}")
        ax.set_xlabel(X_LABELS.get(x_axis, x_axis))
        kinds = sorted(set(part["err_kind"]))
        ax.set_ylabel("tokens/s: mean of rounds, bars " + (kinds[0] if len(kinds) == 1 else "95 % CI or stddev"))
        ax.grid(alpha=0.3)
        if log_x:
            ax.set_xscale("log", base=2)
        if not part.empty:
            ticks = sorted(part["x"].unique())
            ax.set_xticks(ticks, [str(int(t)) for t in ticks])
            ax.legend(fontsize=8)
        else:
            empty_note(ax)
    # Only the default value is no sweep: the report leaves such a figure out.
    save(fig, png, svg, has_data=tables.swept(cells, name, base))


def plot_serving_ttft(serving: pd.DataFrame, png: Path, svg: Path) -> None:
    """Measured TTFT (median, bar up to p90; means over rounds) vs prompt length, one line per
    build/model/concurrency, with llama-bench's estimate dashed beside it."""
    ok = serving
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for (build, model, concurrency), line in ok.groupby(["build", "model", "concurrency"]):
        line = line.sort_values("prompt_tokens")
        ax.errorbar(line["prompt_tokens"], line["ttft_p50_ms"], yerr=[0 * line["ttft_p50_ms"],
                    line["ttft_p90_ms"] - line["ttft_p50_ms"]], marker="o", capsize=3,
                    label=f"{build} / {model}, concurrency {concurrency} (measured)")
    for (build, model), line in ok.dropna(subset=["bench_ttft_estimate_ms"]).groupby(["build", "model"]):
        line = line.drop_duplicates("prompt_tokens").sort_values("prompt_tokens")
        ax.plot(line["prompt_tokens"], line["bench_ttft_estimate_ms"], linestyle="--", marker="x",
                label=f"{build} / {model}, llama-bench estimate")
    ax.set_xlabel("prompt tokens")
    ax.set_ylabel("time to first token, ms (median, bar to p90)")
    ax.set_title("time to first token vs prompt length")
    finish(ax, ok.empty, "no successful serving cells")
    save(fig, png, svg, has_data=not ok.empty)


def plot_serving_latency(serving: pd.DataFrame, png: Path, svg: Path) -> None:
    """The latency-throughput curve over concurrency: TTFT p90 and inter-token p99 vs aggregate tokens/s."""
    ok = serving
    fig, panels = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (column, label) in zip(panels, [("ttft_p90_ms", "TTFT p90 (or max: p90_is_max)"),
                                            ("itl_p99_ms", "inter-token p99")]):
        for (build, model, prompt), line in ok.groupby(["build", "model", "prompt_tokens"]):
            line = line.sort_values("concurrency")
            ax.plot(line["aggregate_tps"], line[column], marker="o", label=f"{build} / {model}, prompt {prompt}")
            for _, point in line.iterrows():
                ax.annotate(f"c{point['concurrency']}", (point["aggregate_tps"], point[column]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("aggregate tokens/s")
        ax.set_ylabel(f"{label}, ms")
        ax.set_title(f"{label} vs throughput (cN = concurrency)")
        finish(ax, ok.empty, "no successful serving cells")
    save(fig, png, svg, has_data=not ok.empty)


def plot_serving_turns(turns: pd.DataFrame, png: Path, svg: Path) -> None:
    """Conversations: TTFT (mean over rounds of each round's median) against the turn index, one line per cell
    (the setting that tells it from the others of its build and model: cache cold or warm, cache reuse, ...), the
    reused share of the prompt beside it."""
    fig, (ttft, reused) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (build, model, cell), line in turns.groupby(["build", "model", "base_cell"]):
        by_turn = line.groupby("turn").agg(ttft=("ttft_p50_ms", "mean"), reused=("reused_share", "mean"))
        label = f"{build} / {model}: {cell}"
        ttft.plot(by_turn.index, by_turn["ttft"], marker="o", label=label)
        reused.plot(by_turn.index, by_turn["reused"], marker="o", label=label)
    ttft.set(xlabel="turn", ylabel="TTFT p50, ms (mean over rounds)", title="time to first token by turn")
    reused.set(xlabel="turn", ylabel="share of the prompt reused from the cache", title="prompt reused by turn",
               ylim=(0, 1))
    for ax in (ttft, reused):
        finish(ax, turns.empty, "no conversation cells")
    save(fig, png, svg, has_data=not turns.empty)


def plot_rpc(rpc: pd.DataFrame, png: Path, svg: Path) -> None:
    """The RPC panels that have data, two a row: pp and tg per topology and device selection beside the local
    partner; tg against the link rate with its bandwidth ceiling (capped netns links only); tg and megabytes per
    generated token against the workers used. A panel without data is not drawn at all."""
    ok = rpc.assign(label=rpc["topology"] + rpc["link_rate"].map(lambda r: "" if r == "unlimited" else f" {r}")
                    + " -dev " + rpc["devices"])
    links = ok[ok["devices"] != "none"].dropna(subset=["tg_ts"])
    links = links.assign(rate=links["link_rate"].map(lambda r: (options.rate_bits(r) or float("nan")) / 1e6))
    panels = [(lambda ax, data: rpc_speeds(ax, data, metrics.PP), ok.dropna(subset=[metrics.PP_TS.name])),
              (lambda ax, data: rpc_speeds(ax, data, metrics.TG), ok.dropna(subset=[metrics.TG_TS.name])),
              (rpc_links, links.dropna(subset=["rate"])), (rpc_scaling, ok.dropna(subset=["tg_ts"]))]
    shown = [(draw, data) for draw, data in panels if not data.empty]
    rows = max(1, (len(shown) + 1) // 2)
    fig, grid = plt.subplots(rows, 2, figsize=(11, 4 * rows), squeeze=False)
    for ax, (draw, data) in zip(grid.flat, shown):
        draw(ax, data)
    for ax in list(grid.flat)[len(shown):]:
        ax.remove()
    save(fig, png, svg, has_data=bool(shown))


def rpc_speeds(ax: Any, data: pd.DataFrame, test: str) -> None:
    """``test`` t/s per topology and device selection, the local partner grey."""
    data = data.sort_values(["topology", "link_rate", "workers_used"])
    ax.barh(data["label"], data[f"{test}_ts"], xerr=data[f"{test}_stddev_ts"], capsize=3,
            color=["grey" if d == "none" else "tab:blue" for d in data["devices"]])
    ax.set_xlabel(f"{test} tokens/s (mean ± stddev); grey: -dev none (local)")
    ax.set_title(f"{'prompt processing' if test == metrics.PP else 'text generation'} per topology")
    ax.grid(alpha=0.3, axis="x")


def rpc_links(ax: Any, links: pd.DataFrame) -> None:
    """Generation against the capped link rate, beside the ceiling the link's bytes per token allow."""
    for (topology, devices), line in links.groupby(["topology", "devices"]):
        line = line.sort_values("rate")
        ax.plot(line["rate"], line["tg_ts"], marker="o", label=f"{topology} -dev {devices}: measured tg")
        ax.plot(line["rate"], line["link_ceiling_tg_ts"], linestyle="--",
                label=f"{topology} -dev {devices}: link ceiling")
    ax.set_xscale("log")
    ax.set_xlabel("link rate, Mbit/s (tbf cap, bandwidth only)")
    ax.set_ylabel("tg tokens/s")
    ax.set_title("generation vs link bandwidth")
    finish(ax, False, "")


def rpc_scaling(ax: Any, scaling: pd.DataFrame) -> None:
    """Generation (and, dotted on a second axis, megabytes over the links per token) against the workers used."""
    for (topology, rate), line in scaling.groupby(["topology", "link_rate"]):
        line = line.groupby("workers_used", as_index=False).agg(tg_ts=("tg_ts", "max"))
        ax.plot(line["workers_used"], line["tg_ts"], marker="o", label=f"{topology} {rate}: tg t/s")
    ax.set_xlabel("RPC workers used (0 = local partner)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("tg tokens/s")
    ax.set_title("scaling over workers")
    ax.grid(alpha=0.3)
    traffic = scaling.dropna(subset=["mb_per_generated_token"])
    if not traffic.empty:
        twin = ax.twinx()
        for (topology, rate), line in traffic.groupby(["topology", "link_rate"]):
            line = line.sort_values("workers_used")
            twin.plot(line["workers_used"], line["mb_per_generated_token"], linestyle=":", marker="s",
                      label=f"{topology} {rate}: MB/token")
        twin.set_ylabel("MB over the links per generated token (dotted)")
    ax.legend(fontsize=7, loc="upper left")

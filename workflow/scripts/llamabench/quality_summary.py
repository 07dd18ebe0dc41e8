"""Rule ``quality_summary``: results/quality.csv and the frontier figure, quality cost beside speed.

One row per quality cell and reference: its cost (mean KLD, same top token, perplexity ratio, with 95 %
intervals over chunks) and its speed against the defaults (the setting-vs-defaults comparison of the benchmark
cell with these settings and every other setting at the defaults', paired by round), and whether it is on the
frontier: no other setting of its build and model is both closer to the reference and faster (faster by its
paired test: a speed-up the test does not support counts as none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from llamabench.core import axes, comparisons, files, layout, metrics, quality, records
from llamabench.core.status import Status
from llamabench.derive import quality as cost
from llamabench.derive import statistics
from llamabench.plots import empty_note, plt, save

COST_FIELDS = ("kld_mean", "kld_ci_low", "kld_ci_high", "kld_p99", "same_top", "same_top_ci_low",
               "same_top_ci_high", "ppl", "ppl_ratio", "ppl_ratio_ci_low", "ppl_ratio_ci_high")


def quality_summary(smk: Any) -> None:
    pairs = records.read_table(Path(smk.input.comparisons), "comparison_row")
    stats = records.read_table(Path(smk.input.stats), "stats_row")
    memory = records.read_table(Path(smk.input.memory), "memory_row")
    found = [records.read(path, "quality_cell") for path in smk.input.cells]
    builds = {b["name"]: b for b in (records.read(path, "build") for path in smk.input.builds)}
    rows = summary_rows(found, dict(smk.params.speed_cells), dict(smk.params.reference), pairs, builds,
                        Ladder(stats, smk.params.defaults_cell, smk.params.alpha))
    for row in rows:
        row["predicted_mib"] = predicted(memory, row["build"], row["model"], row.get("speed_cell"))
    table = records.frame(rows, "quality_row")
    records.write_table(Path(smk.output.csv), table)
    plot_frontier(table, Path(smk.output.png), Path(smk.output.svg))
    # every quality cell of the plan has read its reference's logits (512 KiB per token at a 262k vocabulary): a
    # cell added later makes them again (quality_cell.remake_logits)
    for record in found:
        if record["reference"]:
            files.remove(Path(layout.path("quality_logits", build=record["build_name"], model=record["model_name"])))


def setting(params: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    """What differs from the reference, as llama.cpp's flags (``-ctk q8_0 -ctv q8_0``)."""
    changed = {name: value for name, value in params.items() if reference.get(name) != value}
    changed |= {name: axes.AXES[name].default for name in reference if name not in params}
    # the newest trees' spelling (llama-perplexity parses llama-server's common flags)
    flags = [f"{axes.AXES[name].spellings[axes.LLAMA_SERVER][0].flag} {value}" for name, value in changed.items()]
    return " ".join(flags) or quality.REFERENCE


def _speed(pairs: pd.DataFrame, build: str, model: str, cells: list[str]) -> dict[str, Any]:
    """The tg and pp ratio (with interval and verdict) of the first of ``cells`` compared with the defaults."""
    rows = pairs[(pairs["comparison"] == comparisons.SETTING_VS_DEFAULTS.name) & (pairs["model"] == model)
                 & (pairs["candidate_build"] == build) & pairs["candidate_cell"].isin(cells)]
    found: dict[str, Any] = {"speed_cell": cells[0] if cells else None}
    for row in rows.itertuples():
        kind = metrics.test_kind(row.test)
        if kind in (metrics.PP, metrics.TG) and f"{kind}_ratio" not in found:
            found |= {f"{kind}_ratio": row.ratio, f"{kind}_ratio_ci_low": row.ratio_ci_low,
                      f"{kind}_ratio_ci_high": row.ratio_ci_high, f"{kind}_verdict": row.verdict}
    return found


def predicted(memory: pd.DataFrame, build: str, model: str, cell: str | None) -> float | None:
    """The memory predictor's (derive/memory.py) total for a benchmark cell, over its devices: what the settings
    take at the benchmark's context (more K/V at a longer one)."""
    if cell is None or memory.empty:
        return None
    rows = memory[(memory["kind"] == "bench_cell") & (memory["build"] == build) & (memory["model"] == model)
                  & (memory["cell"] == cell) & (memory["component"] == "total")
                  & (memory["predictor"] == "derive/memory.py")]
    return float(rows["predicted_mib"].sum()) if len(rows) else None


class Ladder:
    """The speed of a ladder rung (a quantized model) against its source model's defaults cell: no comparison of
    the run pairs two models, so the rounds of the two stats rows are paired here, and the rungs' tests corrected
    together (Benjamini-Hochberg) before a verdict."""

    def __init__(self, stats: pd.DataFrame, defaults_cell: str, alpha: float) -> None:
        self.stats, self.defaults_cell, self.alpha = stats, defaults_cell, alpha
        self.found: list[dict[str, Any]] = []

    def _rounds(self, build: str, model: str, cell: str, kind: str) -> dict[int, float]:
        rows = self.stats[(self.stats["build"] == build) & (self.stats["model"] == model)
                          & (self.stats["cell"] == cell) & (self.stats["test"].map(metrics.test_kind) == kind)]
        if rows.empty or pd.isna(rows["rounds_used"].iloc[0]):
            return {}
        return dict(zip(json.loads(rows["rounds_used"].iloc[0]), json.loads(rows["round_means"].iloc[0]),
                        strict=True))

    def speed(self, build: str, source: str, model: str, cells: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {"speed_cell": cells[0] if cells else None}
        for kind in (metrics.TG, metrics.PP):
            base = self._rounds(build, source, self.defaults_cell, kind)
            mine = self._rounds(build, model, cells[0], kind) if cells else {}
            common = sorted(set(base) & set(mine))
            if not common:
                continue
            paired = statistics.paired([base[r] for r in common], [mine[r] for r in common])
            found |= {f"{kind}_ratio": paired.get("ratio"), f"{kind}_ratio_ci_low": paired.get("ratio_ci_low"),
                      f"{kind}_ratio_ci_high": paired.get("ratio_ci_high"), f"_{kind}_p": paired.get("p_value"),
                      f"{kind}_verdict": paired.get("note")}
        self.found.append(found)
        return found

    def decide(self) -> None:
        """Each rung's verdicts, from its p-values corrected over every rung's test."""
        tests = [(found, kind) for found in self.found for kind in (metrics.TG, metrics.PP)
                 if found.get(f"_{kind}_p") is not None]
        for (found, kind), p in zip(tests, statistics.adjust([found[f"_{kind}_p"] for found, kind in tests])):
            found[f"{kind}_verdict"] = statistics.verdict(p, found[f"{kind}_ratio"], self.alpha)
        for found in self.found:
            for kind in (metrics.TG, metrics.PP):
                found.pop(f"_{kind}_p", None)


def summary_rows(found: list[Mapping[str, Any]], speed_cells: Mapping[str, list[str]],
                 reference: Mapping[str, Any], pairs: pd.DataFrame, builds: Mapping[str, Mapping[str, Any]],
                 ladder: Ladder) -> list[dict[str, Any]]:
    """quality_row rows, the frontier marked per build and model (a ladder's rungs on their source's frontier).
    ``speed_cells``: each record's path key (build/model/cell) -> the benchmark cells that measure its speed."""
    rows, speeds = [], []
    for record in found:
        build, model, cid = record["build_name"], record["model_name"], record["cell"]
        source = record.get("reference_model") or model
        ok = record["status"] == Status.OK
        values = {name: record.get(name) for name in COST_FIELDS} if ok and not record["reference"] else {}
        if record["reference"] and ok:
            values = {"kld_mean": 0.0, "same_top": 1.0, "ppl": record["ppl"], "ppl_ratio": 1.0}
        cells = list(speed_cells.get(f"{build}/{model}/{cid}", []))
        speed = _speed(pairs, build, model, cells) if source == model else ladder.speed(build, source, model, cells)
        if record["reference"] and speed["speed_cell"]:
            speed |= {"tg_ratio": 1.0, "pp_ratio": 1.0}
        software = (builds.get(build) or {}).get("software_device")
        flags = setting(record["params"], reference)
        if source != model:  # a ladder's rung: its model first, then what else differs
            rung = f"{model} ({record['model']['origin'].get('note', 'quantised')})"
            flags = rung if flags == quality.REFERENCE else f"{rung} {flags}"
        weights = str(record["model"]["gguf"].get("quantization") or "").removeprefix("MOSTLY_") or None
        rows.append({"build": build, "model": model, "reference_model": source, "cell": cid,
                     "reference": record["reference"], "setting": flags, "weights": weights,
                     **record["params"],
                     "status": record["status"], "error": record["error"],
                     "label": "; ".join(x for x in (record.get("label"), software) if x) or None,
                     **values, "ctx_size": record["ctx_size"], "chunks": record["chunks"],
                     "text_sha256": record["text_sha256"]})
        speeds.append(speed)
    ladder.decide()  # the rungs' verdicts, corrected together, before the speeds join their rows
    for row, speed in zip(rows, speeds, strict=True):
        row.update(speed)
    for build, model in {(r["build"], r["reference_model"]) for r in rows}:
        group = [r for r in rows if (r["build"], r["reference_model"]) == (build, model)]
        for row, efficient in zip(group, cost.pareto([(r.get("kld_mean"), tested_speed(r)) for r in group])):
            row["pareto"] = efficient
    return rows


def tested_speed(row: Mapping[str, Any]) -> float | None:
    """A row's tg speed as the frontier takes it: its ratio where its test found a difference, else the defaults'
    (1): a setting is never on the frontier for a speed-up the statistics do not support."""
    ratio = row.get("tg_ratio")
    if not records.present(ratio):
        return None
    return ratio if row.get("tg_verdict") in (statistics.IMPROVED, statistics.REGRESSED) else 1.0


def plot_frontier(table: pd.DataFrame, png: Path, svg: Path) -> None:
    """tg speed over the defaults' against mean KLD, 95 % intervals both ways, the frontier joined, one panel per
    build and model."""
    drawn = table.dropna(subset=["kld_mean", "tg_ratio"]) if not table.empty else table
    groups = sorted({(r.build, r.reference_model) for r in drawn.itertuples()}) or [("", "")]
    fig, axs = plt.subplots(1, len(groups), figsize=(8 * len(groups), 5.5), squeeze=False)
    for ax, (build, model) in zip(axs[0], groups):
        rows = drawn[(drawn["build"] == build) & (drawn["reference_model"] == model)] if build else drawn
        for row in rows.itertuples():
            x, y = max(row.kld_mean, 1e-6), row.tg_ratio
            # a KLD of about 0 prints as -0.000000: its interval may lie below the point drawn at 1e-6
            low, high = (float(records.value_or(v, x)) for v in (row.kld_ci_low, row.kld_ci_high))
            xerr = [[max(0.0, x - max(low, 1e-6))], [max(0.0, high - x)]]
            low, high = (float(records.value_or(v, y)) for v in (row.tg_ratio_ci_low, row.tg_ratio_ci_high))
            yerr = [[max(0.0, y - low)], [max(0.0, high - y)]]
            ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o", color="tab:green" if row.pareto else "tab:grey",
                        capsize=3)
            ax.annotate(short_label(row), (x, y), fontsize=6, xytext=(-4 if x > 1e-3 else 4, 4),
                        textcoords="offset points", ha="right" if x > 1e-3 else "left")
        front = rows[rows["pareto"]].sort_values("kld_mean")
        ax.plot(front["kld_mean"].clip(lower=1e-6), front["tg_ratio"], color="tab:green", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("mean KLD from the reference (95 % CI over chunks)")
        ax.set_ylabel("tg t/s over the defaults (95 % CI)")
        ax.set_title(f"{build} / {model}" if build else "quality against speed")
        ax.grid(alpha=0.3)
        if rows.empty:
            empty_note(ax, "no setting measured for both quality and speed")
    save(fig, png, svg, has_data=not drawn.empty)


def short_label(row: Any) -> str:
    """A point's label: a ladder rung's weights type, then the flags that differ from the reference."""
    if row.reference:
        return "reference (KLD 0, drawn at 1e-6)"
    flags = "" if row.model != row.reference_model and " -" not in row.setting else row.setting.split(") ")[-1]
    return " ".join(x for x in (row.weights if row.model != row.reference_model else "", flags) if x)



"""Rule ``findings``: every conclusion the report states, one row each, from the statistics and summaries.

The one owner of conclusions: which setting is fastest (and whether a test
supports it), the best value of each sweep, the lowest served TTFT and the most
throughput under a TTFT limit, how each serving setting compares with the serving
defaults (at the same workload), how TTFT grows per prompt token and what
throughput and TTFT each concurrency sees (workloads are described, never
compared: core/axes.py), how a measured TTFT compares with llama-bench's
estimate, what RPC costs against the local partner, the largest change of each version comparison, how well
memory was predicted, what each tuning study found. Each row carries its numbers, its interval and test where
there is one, and a sentence. ``results/figures_table.csv``
and ``.md`` are a view of this table; the report renders it and picks rows by
their ``question``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from llamabench.core import axes, comparisons, files, matrix, questions, records
from llamabench.core.metrics import (AGGREGATE_TPS, CAPACITY, OBJECTIVES, SINGLE, TEST_WORDS, TG_TS, TTFT_P50, TTFT_P90,
                                     TURN_TTFT,
                                     Metric, speed, test_kind)
from llamabench.core.questions import Question
from llamabench.core.status import Status
from llamabench.derive import bisect, changes, memory_accuracy, sessions, statistics, tables, workloads


def findings(smk: Any) -> None:
    """Rule ``findings``: results/findings.csv and its figures-table view (CSV and Markdown)."""
    cells = tables.current(records.read_table(Path(smk.input.stats), "stats_row"))
    metrics = tables.current(records.read_table(Path(smk.input.metrics), "metric_row"))
    serving = tables.current(records.read_table(Path(smk.input.serving), "serving_row"))
    pairs = records.read_table(Path(smk.input.comparisons), "comparison_row")
    base = dict(smk.params.baseline)
    rows = [*best_settings(cells, pairs, base), *best_serving(serving, metrics, smk.params.ttft_p90_limit_ms),
            *serving_vs_defaults(pairs, metrics), *prompt_cost(serving, metrics), *concurrency_effect(serving, metrics),
            *served_vs_estimate(pairs, metrics), *rpc_vs_local(pairs, metrics),
            *largest_changes(pairs), *best_sweeps(cells, pairs, base),
            *memory_predictions(records.read_table(Path(smk.input.memory), "memory_row")),
            *quality_costs(records.read_table(Path(smk.input.quality), "quality_row")),
            *tuned([records.read(path, "tune") for path in smk.input.tune]),
            *session_effects(sessions.effects(sessions.used_turns(
                records.read_table(Path(smk.input.turns), "turn_row"), serving,
                tables.used_statuses(smk.params.action)), smk.params.alpha)),
            *loaded([records.read(path, "load_sweep") for path in smk.input.load], pairs),
            *bisected([records.read(path, "bisect_study") for path in smk.input.bisect]),
            *history_changes([records.read(path, "history_study") for path in smk.input.history])]
    table = records.frame(labelled(rows, [records.read(path, "build") for path in smk.input.builds]), "finding_row")
    records.write_table(Path(smk.output.csv), table)
    view = tables.figures_table(table)
    records.write_table(Path(smk.output.table_csv), view)
    # Markdown for people: yes/no where a test decided, blank where none did (serving, RPC), not 0/1.
    shown = view.assign(significant=view["significant"].map(lambda v: "" if pd.isna(v) else "yes" if v else "no"))
    with files.atomic_path(Path(smk.output.table_md)) as tmp:
        tmp.write_text(shown.to_markdown(index=False) + "\n" if not view.empty else "No successful cells.\n")


def finding(question: Question, build: str, model: str, label: str, statement: str, **fields: Any) -> dict[str, Any]:
    return records.new("finding_row", {"question": question.name, "build": build, "model": model, "label": label,
                                       "statement": statement, **fields})


def labelled(rows: list[dict[str, Any]], builds: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every finding of a build on a software GPU says so, first: its numbers are a functional check of the GPU
    code paths, never GPU performance."""
    label = {b["name"]: b.get("software_device") for b in builds}
    return [{**row, "software_device": label.get(row["build"]),
             "statement": f"{label[row['build']][0].upper()}{label[row['build']][1:]}. {row['statement']}"
             if label.get(row["build"]) else row["statement"]} for row in rows]


def _ci(row: Mapping[str, Any]) -> str:
    low, high = row.get("ratio_ci_low"), row.get("ratio_ci_high")
    return "" if low is None or pd.isna(low) else f" (95 % CI {low:.2f}-{high:.2f}×)"


def best_settings(cells: pd.DataFrame, pairs: pd.DataFrame, base: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per build, model and test: the setting significantly faster than the defaults (the largest such
    ratio), or that no setting is."""
    rows = []
    base_id = matrix.cell_id(base)
    own = pairs[pairs["comparison"] == comparisons.SETTING_VS_DEFAULTS.name]
    for _, ref in cells[cells["cell"] == base_id].iterrows():
        build, model, test = ref["build"], ref["model"], ref["test"]
        metric = speed(test_kind(test)).label
        tested = own[(own["baseline_build"] == build) & (own["model"] == model) & (own["test"] == test)]
        winners = tested[tested["verdict"] == statistics.IMPROVED]
        common = {"metric": metric, "subject": test, "reference_value": round(float(ref["mean_ts"]), 2),
                  "evidence": "comparisons.csv"}
        if winners.empty:
            rows.append(finding(
                questions.BEST_SETTING, build, model, metric,
                f"{build} / {model}: no setting is significantly faster than the defaults for {metric} "
                f"({test}, {ref['mean_ts']:.1f} t/s).",
                answer=f"defaults ({statistics.NO_DIFFERENCE} found)", cell=base_id, value=common["reference_value"],
                ratio=1.0, significant=False, verdict=statistics.NO_DIFFERENCE, **common))
            continue
        best = winners.loc[winners["ratio"].idxmax()]
        cell = cells[(cells["build"] == build) & (cells["model"] == model) & (cells["cell"] == best["candidate_cell"])
                     & (cells["test"] == test)].iloc[0]
        setting = tables.setting_text(cell, base)
        fields = {"ratio": round(float(best["ratio"]), 3), "ratio_ci_low": best["ratio_ci_low"],
                  "ratio_ci_high": best["ratio_ci_high"]}
        rows.append(finding(
            questions.BEST_SETTING, build, model, metric,
            f"{build} / {model}: {setting} is the fastest setting for {metric} ({test}): {fields['ratio']:.2f}× "
            f"the defaults{_ci(fields)}.",
            answer=setting, cell=best["candidate_cell"], value=round(float(best["candidate_mean"]), 2),
            p_adjusted=best["p_adjusted"], verdict=best["verdict"], significant=True, **fields, **common))
    return rows


def best_sweeps(cells: pd.DataFrame, pairs: pd.DataFrame, base: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The lab report's questions: per swept figure (best threads, best batch, best GPU layers), build, model
    and metric, the fastest value of that sweep, and whether it beats the defaults significantly."""
    rows = []
    own = pairs[pairs["comparison"] == comparisons.SETTING_VS_DEFAULTS.name]
    base_id = matrix.cell_id(base)
    for name, (x_axis, split, _) in axes.FIGURES.items():
        data = tables.single_tests(tables.sweep(cells, {x_axis, split} - {None}, base))
        for (build, model, kind), group in data.groupby(["build", "model", "kind"]):
            if group["cell"].nunique() < 2:
                continue  # not swept for this build
            best = group.loc[group["mean_ts"].idxmax()]
            ref = group[group["cell"] == base_id]
            tested = own[(own["candidate_cell"] == best["cell"]) & (own["baseline_build"] == build)
                         & (own["model"] == model) & (own["test"] == best["test"])]
            significant = bool(len(tested)) and tested.iloc[0]["verdict"] == statistics.IMPROVED
            setting = tables.setting_text(best, base)
            ratio = round(float(best["mean_ts"] / ref.iloc[0]["mean_ts"]), 3) if len(ref) else None
            verdict = tested.iloc[0]["verdict"] if len(tested) else None
            metric = speed(kind).label
            rows.append(finding(
                questions.BEST_SWEEP, build, model, f"best {name} for {metric}",
                sweep_sentence(build, model, name, kind, setting, best, ratio, tested.iloc[0] if len(tested) else None),
                subject=name, metric=metric, answer=setting, cell=best["cell"],
                value=round(float(best["mean_ts"]), 2),
                reference_value=round(float(ref.iloc[0]["mean_ts"]), 2) if len(ref) else None, ratio=ratio,
                significant=significant, verdict=verdict, **_paired_interval(tested),
                p_adjusted=tested.iloc[0]["p_adjusted"] if len(tested) else None, evidence=f"figures/{name}.png"))
    return rows


def _paired_interval(tested: pd.DataFrame) -> dict[str, Any]:
    """The ratio's 95 % CI of the paired test of a sweep's best value against the defaults, where one ran."""
    if tested.empty or pd.isna(tested.iloc[0]["ratio_ci_low"]):
        return {}
    return {"ratio_ci_low": tested.iloc[0]["ratio_ci_low"], "ratio_ci_high": tested.iloc[0]["ratio_ci_high"]}


def sweep_sentence(build: str, model: str, name: str, kind: str, setting: str, best: Mapping[str, Any],
                   ratio: float | None, test: Mapping[str, Any] | None) -> str:
    """The answer to "which <name>?" as a user would say it: use the best value where the paired test says it
    beats the defaults, else that the parameter makes no significant difference here."""
    what = TEST_WORDS[kind]
    where = f"{build} / {model}"
    if test is not None and test["verdict"] == statistics.IMPROVED:
        return (f"{where}: use {setting} for {what}: {ratio:.2f}× faster than the defaults{_ci(test)}, "
                f"{best['mean_ts']:.1f} t/s.")
    if setting == "defaults":
        return f"{where}: the defaults are the fastest {name} for {what} ({best['mean_ts']:.1f} t/s)."
    if ratio is None:
        return (f"{where}: the best {name} for {what} is {setting} ({best['mean_ts']:.1f} t/s; no defaults cell to "
                "compare).")
    detail = f"{ratio:.2f}× the defaults{_ci(test) if test is not None else ''}"
    verdict = test["verdict"] if test is not None else "not tested"
    if verdict == statistics.NO_DIFFERENCE:
        return f"{where}: {name} makes no significant difference to {what} here (best {setting}, {detail})."
    return f"{where}: the best {name} for {what} is {setting} ({detail}; {verdict})."


def metric_table(metrics: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """One metric of every serving or RPC cell: mean and interval over its rounds, with the setting in words."""
    return metrics[metrics["metric"] == metric.name].set_index(["build", "model", "cell"])


def _interval(row: Mapping[str, Any], unit: str) -> str:
    low, high = row.get("ci_low"), row.get("ci_high")
    return "" if low is None or pd.isna(low) else f" (95 % CI {low:.0f}-{high:.0f} {unit})"


def _value_interval(row: Mapping[str, Any]) -> dict[str, Any]:
    """A mean's 95 % CI over rounds as a finding's value interval, where it has one."""
    low, high = row.get("ci_low"), row.get("ci_high")
    return {} if low is None or pd.isna(low) else {"value_ci_low": float(low), "value_ci_high": float(high)}


def best_serving(serving: pd.DataFrame, metrics: pd.DataFrame, ttft_p90_limit_ms: float) -> list[dict[str, Any]]:
    """Per build, model and workload (the cells that do the same work, derive/workloads.py): the setting with the
    lowest measured TTFT p50, and the one with the highest aggregate throughput among those whose TTFT p90 stays
    under the limit; means over rounds, with their intervals. A shorter prompt or less concurrency is not a
    setting a user can choose, so cells of different work are never ranked together, and a workload measured
    with one setting only has nothing to choose."""
    rows = []
    ttft, p90 = described(serving, metrics, TTFT_P50), metric_table(metrics, TTFT_P90)
    throughput = metric_table(metrics, AGGREGATE_TPS)
    for where, group in workloads.same_work(ttft, axes.SERVING):
        if len(group) < 2:
            continue
        build, model = group.iloc[0]["build"], group.iloc[0]["model"]
        at = f" at {where}" if where else ""
        fastest = group.loc[group["mean"].idxmin()]
        rows.append(finding(questions.LOWEST_TTFT, build, model, f"lowest measured {TTFT_P50.label}",
                            f"{build} / {model}{at}: the lowest measured TTFT p50 is {fastest['mean']:.0f} ms"
                            f"{_interval(fastest, 'ms')}, with {fastest['setting']}.",
                            metric=TTFT_P50.label, answer=fastest["setting"], cell=fastest["cell"],
                            value=round(float(fastest["mean"]), 2), **_value_interval(fastest),
                            evidence="figures/serving_ttft.png"))
        label = f"highest aggregate t/s with measured TTFT p90 <= {ttft_p90_limit_ms:g} ms"
        within = [cell for cell in group["cell"] if (build, model, cell) in p90.index
                  and p90.loc[(build, model, cell), "mean"] <= ttft_p90_limit_ms and (build, model, cell) in
                  throughput.index]
        if not within:
            rows.append(finding(questions.THROUGHPUT_UNDER_TTFT_LIMIT, build, model, label,
                                f"{build} / {model}{at}: no setting kept TTFT p90 under {ttft_p90_limit_ms:g} ms.",
                                metric=AGGREGATE_TPS.label, answer="no cell within the limit",
                                evidence="figures/serving_latency.png"))
            continue
        best = max(within, key=lambda cell: throughput.loc[(build, model, cell), "mean"])
        row = throughput.loc[(build, model, best)]
        rows.append(finding(questions.THROUGHPUT_UNDER_TTFT_LIMIT, build, model, label,
                            f"{build} / {model}{at}: the most throughput with TTFT p90 under {ttft_p90_limit_ms:g} "
                            f"ms is {row['mean']:.1f} t/s{_interval(row, 't/s')}, with {row['setting']}.",
                            metric=AGGREGATE_TPS.label, answer=row["setting"], cell=best,
                            value=round(float(row["mean"]), 2), **_value_interval(row),
                            evidence="figures/serving_latency.png"))
    return rows


def _compared(pair: pd.Series) -> dict[str, Any]:
    """The numbers a finding takes from one comparison row."""
    return {"ratio": round(float(pair["ratio"]), 3) if pd.notna(pair["ratio"]) else None,
            "ratio_ci_low": pair["ratio_ci_low"], "ratio_ci_high": pair["ratio_ci_high"],
            "p_adjusted": pair["p_adjusted"], "verdict": pair["verdict"],
            "significant": pair["verdict"] in (statistics.IMPROVED, statistics.REGRESSED, statistics.HIGHER,
                                               statistics.LOWER) if pd.notna(pair["p_adjusted"]) else None}


def serving_vs_defaults(pairs: pd.DataFrame, metrics: pd.DataFrame) -> list[dict[str, Any]]:
    """Each serving setting against the serving defaults cell: TTFT p50 and aggregate throughput."""
    rows = []
    told = {metric.name: metric for metric in (TTFT_P50, AGGREGATE_TPS)}
    settings = metrics.drop_duplicates(["build", "model", "cell"]).set_index(["build", "model", "cell"])["setting"]
    own = pairs[(pairs["comparison"] == comparisons.SERVING_SETTING_VS_DEFAULTS.name) & pairs["test"].isin(list(told))]
    for pair in own.itertuples(index=False):
        pair = pd.Series(pair._asdict())
        key = (pair["candidate_build"], pair["model"], pair["candidate_cell"])
        setting = settings.get(key, pair["candidate_cell"])
        reference = settings.get((pair["baseline_build"], pair["model"], pair["baseline_cell"]), "the defaults")
        metric, unit = told[pair["test"]].label, told[pair["test"]].unit
        numbers = _compared(pair)
        rows.append(finding(
            questions.SERVING_VS_DEFAULTS, key[0], key[1], f"{metric}: serving setting vs defaults",
            f"{key[0]} / {key[1]}: {metric} at {setting} is {pair['candidate_mean']:.1f} {unit}, "
            f"{numbers['ratio']:.2f}× the defaults' ({reference}){_ci(pair)}: {pair['verdict']}."
            if numbers["ratio"] else f"{key[0]} / {key[1]}: {metric} at {setting}: {pair['verdict']}.",
            subject=setting, metric=metric, answer=setting, cell=key[2],
            value=round(float(pair["candidate_mean"]), 2) if pd.notna(pair["candidate_mean"]) else None,
            reference_value=round(float(pair["baseline_mean"]), 2) if pd.notna(pair["baseline_mean"]) else None,
            evidence="metrics.csv", **numbers))
    return rows


def serving_axes(serving: pd.DataFrame) -> pd.DataFrame:
    """Each serving cell's axes as it had them (a row per build, model and cell): what its work and settings were."""
    names = axes.names(axes.SERVING)
    first = serving.drop_duplicates(["build", "model", "base_cell"])
    return pd.DataFrame([{"build": row["build"], "model": row["model"], "cell": row["base_cell"],
                          **{name: tables.value(row, name) for name in names}} for _, row in first.iterrows()],
                        columns=["build", "model", "cell", *names])


def described(serving: pd.DataFrame, metrics: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """A row per serving cell: its axes beside its statistics over rounds of ``metric`` (metrics.csv)."""
    return serving_axes(serving).merge(metrics[metrics["metric"] == metric.name], on=["build", "model", "cell"])


def _listed(values: list[int]) -> str:
    """At least two values in words: ``32 and 128``, ``32, 64 and 128``."""
    return f"{', '.join(str(v) for v in values[:-1])} and {values[-1]}"


def prompt_cost(serving: pd.DataFrame, metrics: pd.DataFrame) -> list[dict[str, Any]]:
    """Per build, model and set of serving cells that differ in prompt length alone: how much TTFT p50 grows per
    prompt token, with its interval (derive/workloads.py). A prompt length describes the work, so it is described
    here and never compared with the defaults as a setting."""
    rows = []
    cells = described(serving, metrics, TTFT_P50)
    for where, group in workloads.varying(cells, "prompt_tokens", axes.SERVING):
        points = [(row.prompt_tokens, r, v) for row in group.itertuples()
                  for r, v in zip(json.loads(row.rounds_used), json.loads(row.round_values))]
        fit = workloads.per_unit(*zip(*points))
        if fit is None:  # two lengths measured in no common round: nothing paired to describe
            continue
        build, model = group.iloc[0]["build"], group.iloc[0]["model"]
        ci = (f" (95 % CI {fit['ci_low']:.2f} to {fit['ci_high']:.2f})" if fit["ci_low"] is not None
              else " (one round: no interval)")
        how = (f"a line through {fit['points']} round values" if fit["method"] == workloads.FIT
               else f"the difference per token, paired over {fit['points']} round{'s' if fit['points'] != 1 else ''}")
        rows.append(finding(
            questions.TTFT_PER_PROMPT_TOKEN, build, model, f"{TTFT_P50.label} per prompt token",
            f"{build} / {model}: TTFT p50 grows by {fit['slope']:.2f} ms per prompt token{ci} over prompts of "
            f"{_listed([int(x) for x in fit['levels']])} tokens{f', at {where}' if where else ''} ({how}).",
            subject="prompt_tokens", metric=f"{TTFT_P50.label} per prompt token", answer=f"{fit['slope']:.3g} ms/token",
            value=fit["slope"], value_ci_low=fit["ci_low"], value_ci_high=fit["ci_high"],
            evidence="figures/serving_ttft.png"))
    return rows


def concurrency_effect(serving: pd.DataFrame, metrics: pd.DataFrame) -> list[dict[str, Any]]:
    """Per build, model and set of serving cells that differ in concurrency alone: aggregate throughput and TTFT p50
    at each concurrency, means over rounds with their intervals. Concurrency describes the load, so it is described,
    never called an improvement."""
    rows = []
    throughput = described(serving, metrics, AGGREGATE_TPS)
    ttft = metric_table(metrics, TTFT_P50)
    for where, group in workloads.varying(throughput, "concurrency", axes.SERVING):
        group = group.sort_values("concurrency")
        build, model = group.iloc[0]["build"], group.iloc[0]["model"]
        waits = [ttft.loc[(build, model, cell)] for cell in group["cell"] if (build, model, cell) in ttft.index]
        said = f" with TTFT p50 {_through(waits)} ms" if len(waits) == len(group) else ""
        first, last = group.iloc[0], group.iloc[-1]
        rows.append(finding(
            questions.CONCURRENCY_EFFECT, build, model, "aggregate t/s and TTFT p50 against concurrency",
            f"{build} / {model}{f', at {where}' if where else ''}: concurrency "
            f"{' → '.join(str(c) for c in group['concurrency'])} serves {_through([r for _, r in group.iterrows()])} "
            f"aggregate t/s{said} (means over rounds, 95 % CI in brackets).",
            subject="concurrency", metric=AGGREGATE_TPS.label, answer=f"concurrency {last['concurrency']}",
            cell=last["cell"], value=round(float(last["mean"]), 2), value_ci_low=last["ci_low"],
            value_ci_high=last["ci_high"], reference_value=round(float(first["mean"]), 2),
            evidence="figures/serving_latency.png"))
    return rows


def _through(means: list[Mapping[str, Any]]) -> str:
    """Means over rounds in order, each with its interval: ``104 [98, 111] → 180 [170, 2030]``."""
    return " → ".join(_number(m["mean"]) + ("" if pd.isna(m["ci_low"]) else
                                            f" [{_number(m['ci_low'])}, {_number(m['ci_high'])}]") for m in means)


def _number(value: float) -> str:
    """Three significant digits, never in exponent notation (2030, not 2.03e+03)."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def served_vs_estimate(pairs: pd.DataFrame, metrics: pd.DataFrame) -> list[dict[str, Any]]:
    """Each serving cell's measured TTFT p50 against llama-bench's estimate of the same round (prompt at pp
    speed plus one token at tg speed): how far what a user waits is from what llama-bench predicts."""
    rows = []
    settings = metrics.drop_duplicates(["build", "model", "cell"]).set_index(["build", "model", "cell"])["setting"]
    for pair in pairs[pairs["comparison"] == comparisons.SERVED_VS_ESTIMATE.name].itertuples(index=False):
        pair = pd.Series(pair._asdict())
        key = (pair["candidate_build"], pair["model"], pair["candidate_cell"])
        setting = settings.get(key, key[2])
        numbers = _compared(pair)
        if numbers["ratio"] is None:
            continue
        rows.append(finding(
            questions.SERVED_VS_ESTIMATE, key[0], key[1], "measured TTFT / llama-bench estimate",
            f"{key[0]} / {key[1]}: at {setting} a user waits {pair['candidate_mean']:.0f} ms for the first token, "
            f"{numbers['ratio']:.2f}× llama-bench's estimate of {pair['baseline_mean']:.0f} ms{_ci(pair)}: "
            f"{pair['verdict']}.",
            subject=setting, metric=TTFT_P50.label, answer=setting, cell=key[2],
            value=round(float(pair["candidate_mean"]), 2), reference_value=round(float(pair["baseline_mean"]), 2),
            evidence="figures/serving_ttft.png", **numbers))
    return rows


def rpc_vs_local(pairs: pd.DataFrame, metrics: pd.DataFrame) -> list[dict[str, Any]]:
    """Per client build, model and topology: generation through its fastest device selection against the
    client alone on its CPU (-dev none), paired by round."""
    rows = []
    settings = metrics.drop_duplicates(["build", "model", "cell"]).set_index(["build", "model", "cell"])["setting"]
    through = pairs[(pairs["comparison"] == comparisons.RPC_VS_LOCAL.name) & (pairs["test"] == TG_TS.name)].dropna(
        subset=["candidate_mean"])
    through = through.assign(topology=through["candidate_cell"].str.extract(r"_topology-([^_]+)")[0])
    for (build, model, topology), group in through.groupby(["candidate_build", "model", "topology"]):
        pair = group.loc[group["candidate_mean"].astype(float).idxmax()]
        setting = settings.get((build, model, pair["candidate_cell"]), pair["candidate_cell"])
        numbers = _compared(pair)
        rows.append(finding(
            questions.RPC_VS_LOCAL, build, model, f"RPC vs local {TG_TS.label} ({topology})",
            rpc_sentence(build, model, setting, pair), subject=topology, metric=TG_TS.label, answer=setting,
            cell=pair["candidate_cell"],
            value=round(float(pair["candidate_mean"]), 2), reference_value=round(float(pair["baseline_mean"]), 2),
            evidence="figures/rpc.png", **numbers))
    return rows


def rpc_sentence(build: str, model: str, setting: str, pair: Mapping[str, Any]) -> str:
    """What RPC costs in generation speed as a share of the client alone, with the interval of that share, and
    whether the paired test finds it: spreading a model over machines is judged by its cost, not called improved or
    regressed (the row's verdict field keeps the test's word)."""
    ratio, low, high = (pair[k] for k in ("ratio", "ratio_ci_low", "ratio_ci_high"))
    slower = ratio < 1
    change = f"costs {1 - ratio:.0%} of" if slower else f"adds {ratio - 1:.0%} to"
    bounds = sorted(abs(1 - b) for b in (low, high)) if pd.notna(low) else None
    ci = f", 95 % CI {bounds[0]:.0%}-{bounds[1]:.0%}" if bounds and (low < 1) == (high < 1) else (
        f", 95 % CI {low:.2f}-{high:.2f}×" if bounds else "")
    found = {statistics.IMPROVED: "significant", statistics.REGRESSED: "significant",
             statistics.NO_DIFFERENCE: "no significant cost" if slower else statistics.NO_DIFFERENCE}
    return (f"{build} / {model}: RPC through {setting} {change} generation speed ({pair['candidate_mean']:.1f} "
            f"t/s against {pair['baseline_mean']:.1f} t/s on the client alone{ci}): "
            f"{found.get(pair['verdict'], pair['verdict'])}.")


def memory_predictions(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Per build, model and predictor: how well memory was predicted, buffer by buffer and in total."""
    rows = []
    for acc in memory_accuracy.accuracy(table):
        what = "buffer sizes" if acc["scope"] == "components" else "peak resident totals"
        rows.append(finding(
            questions.MEMORY_PREDICTION, acc["build"], acc["model"], f"memory predicted by {acc['predictor']}: {what}",
            f"{acc['build']} / {acc['model']}: {acc['predictor']} predicted {acc['within']} of {acc['compared']} "
            f"{what} within {memory_accuracy.TOLERANCE:.0%} or {memory_accuracy.SLACK_MIB:.0f} MiB (median error "
            f"{acc['median_abs_error']:.1%}, worst {acc['worst_error']:+.1%}: {acc['worst_where']}).",
            subject=acc["predictor"], metric=f"{what}, relative error", answer=f"{acc['within']}/{acc['compared']}",
            cell=acc["worst_cell"], value=acc["median_abs_error"], reference_value=acc["worst_error"],
            evidence="memory.csv"))
    return rows


def quality_costs(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Per measured quality cell: what its setting costs in quality (KLD and same top token, intervals over
    chunks) beside what it gains or loses in speed (its paired test against the defaults)."""
    rows = []
    for row in table[~table["reference"] & (table["status"] == Status.OK)].itertuples() if not table.empty else []:
        rows.append(finding(
            questions.QUALITY_COST, row.build, row.model, f"quality cost of {row.setting}", quality_sentence(row),
            subject=row.setting, metric="KLD", answer=row.setting, cell=row.cell, value=row.kld_mean,
            value_ci_low=records.value_or(row.kld_ci_low), value_ci_high=records.value_or(row.kld_ci_high),
            reference_value=row.same_top, ratio=records.value_or(row.tg_ratio),
            ratio_ci_low=records.value_or(row.tg_ratio_ci_low), ratio_ci_high=records.value_or(row.tg_ratio_ci_high),
            verdict=records.value_or(row.tg_verdict),
            # a cost measured is an answer whatever the speed test said: never folded away as "nothing found"
            significant=None, evidence="quality.csv, comparisons.csv"))
    return rows


def quality_sentence(row: Any) -> str:
    """``-ctk q8_0 -ctv q8_0: no significant speed difference here (tg 1.01×, 95 % CI …); KLD 0.0092 (95 % CI
    0.0083-0.0101) from the reference, top token unchanged in 93.9 % (…), perplexity 0.99×.``"""
    defaults = "the defaults" if row.reference_model == row.model else f"{row.reference_model}'s defaults"
    ci = _ci({"ratio_ci_low": row.tg_ratio_ci_low, "ratio_ci_high": row.tg_ratio_ci_high})
    if not records.present(row.tg_ratio):
        speed = "speed not measured with these settings alone"
    elif row.tg_verdict in (statistics.IMPROVED, statistics.REGRESSED):
        speed = f"generation {row.tg_verdict}: {row.tg_ratio:.2f}× {defaults}{ci}"
    elif row.tg_verdict == statistics.NO_DIFFERENCE:
        speed = f"no significant generation speed difference from {defaults}: {row.tg_ratio:.2f}×{ci}"
    else:  # no test: too few paired rounds
        speed = f"generation {row.tg_ratio:.2f}× {defaults} ({row.tg_verdict or 'not tested'})"
    kld = f"KLD {row.kld_mean:.4g}" + (f" (95 % CI {row.kld_ci_low:.4g}-{row.kld_ci_high:.4g})"
                                       if records.present(row.kld_ci_high) else "")
    same = f"top token unchanged in {_percent(row.same_top)}" + (
        f" (95 % CI {_percent(row.same_top_ci_low)}-{_percent(row.same_top_ci_high)})"
        if records.present(row.same_top_ci_low) else "")
    ppl = f"perplexity {row.ppl_ratio:.3f}× the reference's" if records.present(row.ppl_ratio) else ""
    synthetic = records.present(row.label) and "synthetic" in row.label
    what = "numerical fidelity (a synthetic model: not quality)" if synthetic else "quality"
    reference = "the reference" if row.reference_model == row.model else f"{row.reference_model}'s reference"
    return (f"{row.build} / {row.model}: {row.setting}: {speed}; {what}: {kld} from {reference}, {same}"
            + (f", {ppl}" if ppl else "") + ".")


def _percent(share: float) -> str:
    return f"{share * 100:.1f} %"


def tuned(studies: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per tuning study, build and model: its answer (results/tune/<study>.json), with the winner's speed-up
    over the defaults and why the study ended."""
    rows = []
    for study in studies:
        metric = OBJECTIVES[study["objective"]["metric"]].label
        for found in study["results"]:
            speed, winner = found["speedup"], found["winner"]
            low, high = speed.get("ratio_ci_low"), speed.get("ratio_ci_high")
            rows.append(finding(
                questions.TUNING, found["build"], found["model"], f"tuned settings ({study['study']})",
                found["sentence"],
                subject=study["study"], metric=metric, answer=winner["label"] if winner else None,
                cell=winner["id"] if winner else None, ratio=speed.get("ratio"), ratio_ci_low=low, ratio_ci_high=high,
                verdict=found["end_reason"], significant=None if low is None else bool(low > 1 or high < 1),
                evidence=f"tune/{study['study']}.json"))
    return rows


def session_effects(effects: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per conversation setting against its baseline (derive/sessions.py): what it does to a turn's TTFT, at the
    turn the effect is stated for, paired by round, with the reused share of the prompt that explains it."""
    rows = []
    for effect in effects:
        turn = effect["stated"]
        setting = f"{effect['axis']} {effect['value']} vs {effect['baseline']}"
        where = f" ({effect['where']})" if effect["where"] else ""
        ratio, low, high = turn.get("ratio"), turn.get("ratio_ci_low"), turn.get("ratio_ci_high")
        interval = f", 95 % CI {low:.2f}-{high:.2f}×" if low is not None else ""
        said = _number(turn["baseline_ms"]) + " ms to " + _number(turn["candidate_ms"]) + " ms"
        reused = (f"; the server reused {_percent(turn['reused_candidate'])} of the prompt against "
                  f"{_percent(turn['reused_baseline'])}")
        if turn["verdict"] in (statistics.IMPROVED, statistics.REGRESSED):
            verb = "cuts" if ratio < 1 else "raises"
            statement = (f"{effect['build']} / {effect['model']}{where}: {setting} {verb} turn-{turn['turn']} TTFT "
                         f"from {said} ({ratio:.2f}×{interval}, {turn['rounds']} rounds){reused}.")
        else:
            shown = f"{ratio:.2f}×{interval}" if ratio is not None else turn["verdict"]
            statement = (f"{effect['build']} / {effect['model']}{where}: {setting} makes no significant difference "
                         f"to a turn's TTFT here (turn {turn['turn']}: {said}, {shown}){reused}.")
        rows.append(finding(
            questions.SESSION_SETTING, effect["build"], effect["model"], f"turn TTFT: {setting}", statement,
            subject=setting, metric=TURN_TTFT.label, value=turn["candidate_ms"], reference_value=turn["baseline_ms"],
            ratio=ratio, ratio_ci_low=low, ratio_ci_high=high, p_adjusted=turn.get("p_adjusted"),
            verdict=turn["verdict"], significant=turn["verdict"] in (statistics.IMPROVED, statistics.REGRESSED),
            evidence="figures/serving_turns.png"))
    return rows


def loaded(sweeps: list[Mapping[str, Any]], pairs: pd.DataFrame) -> list[dict[str, Any]]:
    """Per load sweep, build and model: the largest load meeting the objectives with its interval over rounds;
    and each build's capacity against the sweep's first build (comparisons.csv, corrected over the run)."""
    rows = []
    tested = pairs[pairs["comparison"] == comparisons.LOAD_CAPACITY.name]
    for sweep in sweeps:
        name, evidence = sweep["sweep"], f"load/{sweep['sweep']}.json"
        for found in sweep["results"]:
            rows.append(finding(
                questions.LOAD_CAPACITY, found["build"], found["model"],
                f"largest load meeting the objectives ({name})", found["sentence"], subject=name,
                metric=CAPACITY.label, answer=None, value=found["capacity_mean"], value_ci_low=found["capacity_ci_low"],
                value_ci_high=found["capacity_ci_high"], evidence=evidence))
        for _, pair in tested[tested["baseline_cell"] == name].iterrows():
            low, high = pair["ratio_ci_low"], pair["ratio_ci_high"]
            rows.append(finding(
                questions.LOAD_CAPACITY_VS_BUILD, pair["candidate_build"], pair["model"],
                f"capacity vs {pair['baseline_build']} ({name}), ratio",
                f"{pair['candidate_build']} vs {pair['baseline_build']} ({name}), {pair['model']}: the largest load "
                f"meeting the objectives is {pair['verdict']}, {pair['ratio']:.2f}× the baseline's{_ci(pair)}.",
                subject=name, metric=CAPACITY.label, value=pair["candidate_mean"],
                reference_value=pair["baseline_mean"],
                ratio=pair["ratio"], ratio_ci_low=None if pd.isna(low) else low,
                ratio_ci_high=None if pd.isna(high) else high, p_adjusted=pair.get("p_adjusted"),
                verdict=pair["verdict"], significant=pair["verdict"] in (statistics.IMPROVED, statistics.REGRESSED),
                evidence=evidence))
    return rows


def bisected(studies: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per bisect study: its culprit (commit and subject), or why it named none, with the endpoints' ratio."""
    rows = []
    for study in studies:
        name, culprit = study["study"], study["culprit"]
        endpoints = next((p["endpoints"] for p in study["probes"] if p.get("endpoints", {}).get("ratio")), {})
        rows.append(finding(
            questions.BISECT_CULPRIT, study["build"], ", ".join(study["models"]), f"first bad commit ({name})",
            f"Bisect {name}: {study['sentence']}", subject=name, metric=speed(study["metric"]).label,
            answer=f"{culprit['commit'][:9]} {culprit['subject']}" if culprit else study["outcome"],
            ratio=endpoints.get("ratio"), ratio_ci_low=endpoints.get("ratio_ci_low"),
            ratio_ci_high=endpoints.get("ratio_ci_high"), verdict=study["outcome"],
            significant=study["outcome"] == bisect.CULPRIT, evidence=f"bisect/{name}.png"))
    return rows


def history_changes(studies: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per history study: each change point with its paired test (confirmed or not), or one row saying none was
    found."""
    rows = []
    for study in studies:
        name, evidence = study["study"], f"history-studies/{study['study']}.png"
        subjects = {p["commit"]: p["subject"] for p in study["series"]}
        common = dict(subject=name, metric=speed(study["metric"]).label, evidence=evidence)
        for change in study["changes"]:
            after = change["after"]
            rows.append(finding(
                questions.HISTORY_CHANGE, study["build"], ", ".join(study["models"]), f"change point ({name})",
                f"History {study['study']}: {change['direction']} from {change['before'][:9]} to {after[:9]} "
                f"\"{subjects[after]}\", {study['metric']} ×{change['ratio']:.3f}{_ci(change)}, adjusted p = "
                f"{change['p_adjusted']:.2g}: {'confirmed' if change['confirmed'] else 'not significant'}.",
                answer=f"{after[:9]} {subjects[after]}", ratio=change["ratio"],
                ratio_ci_low=change.get("ratio_ci_low"), ratio_ci_high=change.get("ratio_ci_high"),
                p_adjusted=change["p_adjusted"], verdict=change["direction"] if change["confirmed"] else
                statistics.NO_DIFFERENCE, significant=change["confirmed"], **common))
        if not any(change["confirmed"] for change in study["changes"]):
            rows.append(finding(questions.HISTORY_CHANGE, study["build"], ", ".join(study["models"]),
                                f"change point ({name})", f"History {name}: {study['sentence']}",
                                answer=changes.NO_CHANGE,
                                significant=False, verdict=statistics.NO_DIFFERENCE, **common))
    return rows


def largest_changes(pairs: pd.DataFrame) -> list[dict[str, Any]]:
    """Per named comparison, candidate and metric, the largest significant change."""
    rows = []
    tested = pairs[pairs["comparison"] == comparisons.BUILD_VS_BUILD.name]
    for (name, baseline, candidate, model), group in tested.groupby(["name", "baseline_build", "candidate_build",
                                                                      "model"]):
        for kind in SINGLE:
            part = group[group["test"].map(test_kind).eq(kind)
                         & group["verdict"].isin([statistics.IMPROVED, statistics.REGRESSED])]
            metric = speed(kind).label
            label = f"largest significant change in {metric} vs {baseline} ({name}), ratio"
            common = {"subject": name, "metric": metric, "evidence": f"figures/comparison_{name}.png"}
            if part.empty:
                rows.append(finding(questions.LARGEST_CHANGE, candidate, model, label,
                                    f"{candidate} vs {baseline} ({name}), {model}: no significant change in {metric}.",
                                    answer=statistics.NO_DIFFERENCE, significant=False, **common))
                continue
            top = part.loc[(part["ratio"].map(math.log).abs()).idxmax()]
            fields = {"ratio_ci_low": top["ratio_ci_low"], "ratio_ci_high": top["ratio_ci_high"]}
            rows.append(finding(
                questions.LARGEST_CHANGE, candidate, model, label,
                f"{candidate} vs {baseline} ({name}), {model}: {top['test']} {top['verdict']}, "
                f"{top['ratio']:.2f}× the baseline{_ci(fields)}.",
                answer=f"{top['test']}: {top['verdict']}", cell=top["candidate_cell"],
                value=round(float(top["ratio"]), 3), ratio=round(float(top["ratio"]), 3), significant=True,
                verdict=top["verdict"], p_adjusted=top["p_adjusted"], **fields, **common))
    return rows

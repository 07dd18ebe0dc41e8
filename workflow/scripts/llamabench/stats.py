"""Rule ``stats``: statistics over rounds for every kind of cell, paired comparisons, the roofline.

Every statistic is over a cell's round values (derive/statistics.py says why):
the geometric mean with its confidence and prediction intervals (on the log
scale: every value is a time or a speed), and the coefficient of variation that
flags noisy cells - per benchmark cell and test
(``results/stats.csv``), and per serving or RPC cell and metric (TTFT p50/p90,
inter-token and end-to-end latency, aggregate t/s; pp and tg:
``results/metrics.csv``). Comparisons pair two cells by round: every benchmark
setting against the defaults cell of its build, the config's named build
comparisons, every serving setting against the serving defaults cell (a setting
only at its partner's workload: core/axes.py, an axis's role), each
serving cell's measured TTFT against its llama-bench estimate of the same round,
each RPC cell against its ``-dev none`` partner, and each load sweep's capacity on a build against its first
build's. All are corrected together
over the run (Benjamini-Hochberg). Rounds that something else disturbed are left
out unless ``benchmark.disturbance.action`` is ``flag``; every row says which
rounds it used. Cells from different hosts are not compared.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from llamabench.core import axes, backends, matrix, metrics, records
from llamabench.core.comparisons import (BUILD_VS_BUILD, LOAD_CAPACITY, RPC_VS_LOCAL, SERVED_VS_ESTIMATE,
                                         SERVING_SETTING_VS_DEFAULTS, SETTING_VS_DEFAULTS, Comparison)
from llamabench.core.metrics import Metric
from llamabench.core.status import Status
from llamabench.derive import statistics, tables

# Where a cell's layers went: the same in every round.
PLACEMENT = ("offloaded_layers", "model_layers", "op_offload")


def stats(smk: Any) -> None:
    """Rule ``stats``: results/stats.csv, results/metrics.csv and results/comparisons.csv."""
    p = smk.params
    table = records.read_table(Path(smk.input.csv), "summary_row")
    serving = records.read_table(Path(smk.input.serving), "serving_row")
    rpc = records.read_table(Path(smk.input.rpc), "rpc_row")
    used = tables.used_statuses(p.action)
    cells = cell_stats(table, p.noisy_cv, used)
    cells = add_roofline(cells, records.read(smk.input.bandwidth, "bandwidth"),
                         {m["name"]: m for m in (records.read(path, "model") for path in smk.input.models)})
    series = serving_series(serving, used) + rpc_series(rpc, used)
    sweeps = [records.read(path, "load_sweep") for path in smk.input.load]
    devices = {b["name"]: build_device(b.get("software_device"), b["options"])
               for b in (records.read(path, "build") for path in smk.input.builds)}
    pairs = comparisons(table, dict(p.baseline), p.alpha, dict(p.comparisons), used,
                        serving_pairs(serving, used, p.serving_defaults) + rpc_pairs(rpc, used)
                        + load_pairs(sweeps, devices))
    records.write_table(Path(smk.output.stats), cells)
    records.write_table(Path(smk.output.metrics), metric_stats(series, p.noisy_cv))
    records.write_table(Path(smk.output.comparisons), pairs)


def rounds_text(rounds: list[Any]) -> str:
    return json.dumps([int(r) for r in rounds])


def round_means(table: pd.DataFrame, used: set[str]) -> pd.DataFrame:
    """One row per (build, model, base cell, test, round) the statistics use: that round's mean tokens/s."""
    ok = table[table["status"].isin(used) & table["test"].notna()]
    return ok.rename(columns={"avg_ts": "round_mean"})


def left_out(table: pd.DataFrame, used: set[str], keys: list[str]) -> dict[tuple, list[int]]:
    """The rounds of each cell that were measured but are not used (disturbed ones, unless flagged)."""
    measured = table[table["status"].map(lambda s: Status(s).measured).astype(bool) & ~table["status"].isin(used)]
    return {key: sorted(int(r) for r in group["round"]) for key, group in measured.groupby(keys)}


def cell_stats(table: pd.DataFrame, noisy_cv: float, used: set[str] = frozenset({Status.OK})) -> pd.DataFrame:
    rows = []
    keys = ["build", "model", "base_cell", "test"]
    dropped = left_out(table, used, keys)
    for (build, model, base, test), group in round_means(table, used).groupby(keys):
        group = group.sort_values("round")
        values = [float(v) for v in group["round_mean"]]
        summary = statistics.over_rounds(values)
        mean = summary.pop("mean")
        first = group.iloc[0]
        repetitions = [s for text in group["samples_ts"] for s in json.loads(text or "[]")]
        if summary["ci_low"] is not None:
            err = (mean - summary["ci_low"], summary["ci_high"] - mean, "95 % CI over rounds")
        else:  # one round: only the repetitions' spread is known
            sd = float(first["stddev_ts"] or 0)
            err = (sd, sd, "stddev of the repetitions (one round)")
        rows.append(records.new("stats_row", {
            "build": build, "history": bool(first["history"]), "model": model, "cell": base, "test": test,
            **{axis: first[axis] for axis in axes.names(axes.BENCHMARK)},
            **{column: first[column] for column in PLACEMENT},
            **{column: tables.mean_of(group[column]) for column in ("energy_j_per_token", "gpu_power_w")},
            "peak_vram_mib": group["peak_vram_mib"].max() if group["peak_vram_mib"].notna().any() else None,
            "energy_source": first["energy_source"],
            "rounds": len(values), "round_means": json.dumps([round(v, 3) for v in values]),
            "rounds_used": rounds_text(list(group["round"])),
            "dropped_rounds": rounds_text(dropped.get((build, model, base, test), [])),
            "mean_ts": mean, **summary, "noisy": bool(summary["cv"] is not None and summary["cv"] > noisy_cv),
            "err_low": err[0], "err_high": err[1], "err_kind": err[2],
            "busy_rounds": int(group["busy"].notna().sum()),
            "hostname": ", ".join(sorted(set(group["hostname"].dropna()))),
            "samples_ts": json.dumps(repetitions),
        }))
    return records.frame(rows, "stats_row")


def add_roofline(cells: pd.DataFrame, bandwidth: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]],
                 ) -> pd.DataFrame:
    """For tg: bytes read per generated token (weights, plus the KV cache at the cell's mean context) and
    the bandwidth ceiling they imply; pp is bound by compute, whose peak is not estimated here."""
    cells = cells.copy()
    for index, row in cells.iterrows():
        gguf = models.get(row["model"], {}).get("gguf", {})
        if metrics.test_kind(row["test"]) != metrics.TG or not gguf.get("weight_bytes_per_token"):
            continue
        kv = (gguf.get("kv_bytes_per_position_f16") or 0) * (row["n_depth"] + row["n_gen"] / 2)
        per_token = gguf["weight_bytes_per_token"] + kv
        ceiling = bandwidth["gb_per_s"] * 1e9 / per_token
        cells.loc[index, ["bytes_per_token", "ceiling_ts", "roofline_fraction"]] = [
            per_token, ceiling, row["mean_ts"] / ceiling]
    return cells


def comparisons(table: pd.DataFrame, base: Mapping[str, Any], alpha: float,
                named: Mapping[str, Mapping[str, Any]] | None = None, used: set[str] = frozenset({Status.OK}),
                others: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """Every setting against the defaults cell (same build, model and workload), and the config's named
    build comparisons on every cell both measured, beside ``others`` (serving and RPC comparisons, made by
    serving_pairs and rpc_pairs); paired by round, tested on log ratios, all corrected together
    (Benjamini-Hochberg)."""
    grouped = dict(iter(round_means(table, used).groupby(["build", "model", "base_cell", "test"])))
    keyed = {key: series(group, "round_mean") for key, group in grouped.items()}
    base_id = matrix.cell_id(base)
    rows = []
    for (build, model, cell, test), values in keyed.items():
        same_workload = tables.same_workload(grouped[(build, model, cell, test)].iloc[0], base, axes.BENCHMARK)
        if cell != base_id and same_workload and (build, model, base_id, test) in keyed:
            rows.append(compare(SETTING_VS_DEFAULTS, keyed[(build, model, base_id, test)], values,
                                (build, model, base_id, test), (build, model, cell, test)))
    builds = sorted(set(tables.current(table)["build"]))
    for name, spec in (named or {}).items():
        for first, second in build_pairs(spec, builds):
            for (build, model, cell, test), values in keyed.items():
                if build == first and (second, model, cell, test) in keyed:
                    rows.append({**compare(BUILD_VS_BUILD, values, keyed[(second, model, cell, test)],
                                           (first, model, cell, test), (second, model, cell, test)), "name": name})
    rows += others or []
    tested = [i for i, row in enumerate(rows) if row.get("p_value") is not None]
    for i, adjusted in zip(tested, statistics.adjust([rows[i]["p_value"] for i in tested])):
        rows[i]["p_adjusted"] = adjusted
    for row in rows:
        row["verdict"] = statistics.verdict(row.get("p_adjusted"), row.get("ratio"), alpha, row.get("note"),
                                            row["better"])
    return records.frame((records.new("comparison_row", row) for row in rows),
                         "comparison_row")


def series(group: pd.DataFrame, column: str) -> pd.DataFrame:
    """A cell's values of one column by round, with the host each round ran on and the kind of device it used."""
    found = group.dropna(subset=[column])
    return pd.DataFrame({"value": found[column].astype(float).to_numpy(), "hostname": found["hostname"].to_numpy(),
                         "device": [device_kind(row) for _, row in found.iterrows()]},
                        index=found["round"].astype(int).to_numpy())


def device_kind(row: pd.Series) -> str:
    """software GPU, GPU or CPU: what a row's build measured on (its label, else its CMake options' backend)."""
    options = row.get("options")
    return build_device(row.get("software_device"), options.split() if isinstance(options, str) else [])


def build_device(software_device: Any, options: list[str]) -> str:
    """software GPU, GPU or CPU: what a build measures on, from its software label and its CMake options."""
    if isinstance(software_device, str):
        return SOFTWARE_GPU
    return "GPU" if backends.of(options) else "CPU"


SOFTWARE_GPU = "software GPU"


def kind_series(frame: pd.DataFrame, used: set[str], kind: str, setting: Callable[[pd.Series], str],
                ) -> list[dict[str, Any]]:
    """Each serving or RPC cell's metrics by round (those core/metrics.py says ``kind``'s statistics take), with
    the cell in words (``setting`` of its first row) and its rounds left out."""
    found = []
    keys = ["build", "model", "base_cell"]
    dropped = left_out(frame, used, keys)
    for (build, model, base), group in frame[frame["status"].isin(used)].groupby(keys):
        first = group.iloc[0]
        for metric in metrics.summarised_in(kind):
            found.append({"kind": kind, "build": build, "history": bool(first["history"]), "model": model,
                          "cell": base, "metric": metric.name, "better": metric.better,
                          "setting": setting(first), "values": series(group, metric.name),
                          "dropped": dropped.get((build, model, base), [])})
    return found


def serving_series(serving: pd.DataFrame, used: set[str]) -> list[dict[str, Any]]:
    """Each serving cell's metrics by round."""
    return kind_series(serving, used, metrics.SERVE_CELL, lambda first: f"prompt {first['prompt_tokens']}, "
                       f"concurrency {first['concurrency']}, parallel {first['parallel']}")


def rpc_series(rpc: pd.DataFrame, used: set[str]) -> list[dict[str, Any]]:
    """Each RPC cell's pp and tg by round."""
    return kind_series(rpc, used, metrics.RPC_CELL, lambda first: f"{first['topology']} -dev {first['devices']}, "
                       f"link {first['link_rate']}")


def metric_stats(found: list[dict[str, Any]], noisy_cv: float) -> pd.DataFrame:
    """Geometric mean, intervals (log scale: every metric is a time or a speed) and spread over rounds of every
    serving and RPC metric."""
    rows = []
    for item in found:
        values = [float(v) for v in item["values"]["value"]]
        if not values:
            continue
        summary = statistics.over_rounds(values)
        rows.append(records.new("metric_row", {
            **{key: item[key] for key in ("kind", "build", "history", "model", "cell", "metric", "better", "setting")},
            "rounds": len(values), "rounds_used": rounds_text(list(item["values"].index)),
            "dropped_rounds": rounds_text(item["dropped"]), "round_values": json.dumps([round(v, 4) for v in values]),
            **summary, "noisy": bool(summary["cv"] is not None and summary["cv"] > noisy_cv),
            "hostname": ", ".join(sorted(set(item["values"]["hostname"].dropna()))),
        }))
    return records.frame(rows, "metric_row")


def serving_pairs(serving: pd.DataFrame, used: set[str], defaults: str) -> list[dict[str, Any]]:
    """Every serving setting against the serving defaults cell at the same workload (a cell that changes the work,
    a prompt length or a concurrency, is described by the findings, not compared), metric by metric; each cell's
    measured TTFT p50 against its llama-bench partner's estimate of the same round (neither is better: the verdict
    says higher or lower)."""
    rows = []
    ok = serving[serving["status"].isin(used)]
    grouped = {key: group for key, group in ok.groupby(["build", "model", "base_cell"])}
    for (build, model, cell), group in grouped.items():
        reference = grouped.get((build, model, defaults))
        if cell != defaults and reference is not None and tables.same_workload(group.iloc[0], reference.iloc[0],
                                                                               axes.SERVING):
            for metric in metrics.summarised_in(metrics.SERVE_CELL):
                rows.append(compare(SERVING_SETTING_VS_DEFAULTS, series(reference, metric.name),
                                    series(group, metric.name), (build, model, defaults, metric.name),
                                    (build, model, cell, metric.name), metric))
        ttft = metrics.TTFT_P50.name
        rows.append(compare(SERVED_VS_ESTIMATE, series(group, metrics.TTFT_ESTIMATE.name), series(group, ttft),
                            (build, model, group.iloc[0]["bench_cell"], ttft), (build, model, cell, ttft)))
    return rows


def rpc_pairs(rpc: pd.DataFrame, used: set[str]) -> list[dict[str, Any]]:
    """Each RPC cell's pp and tg against its -dev none partner of the same round (from the partner's row)."""
    rows = []
    through = rpc[rpc["status"].isin(used) & (rpc["devices"] != "none")]
    for (build, model, cell, partner), group in through.groupby(["build", "model", "base_cell", "local_cell"]):
        for metric in metrics.summarised_in(metrics.RPC_CELL):
            rows.append(compare(RPC_VS_LOCAL, series(group, f"local_{metric.name}"), series(group, metric.name),
                                (build, model, partner, metric.name), (build, model, cell, metric.name), metric))
    return rows


def load_pairs(sweeps: list[Mapping[str, Any]], devices: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Each load sweep's capacity on every other build against its first build, paired by round (the rounds
    each used). A round where a build met the objectives at no level has no ratio: the pair is not tested; nor is
    a software GPU's capacity against a hardware GPU's (``devices``: each build's, build_device)."""
    devices = devices or {}
    rows = []
    for sweep in sweeps:
        found = {(r["build"], r["model"]): r for r in sweep["results"]}
        for (build, model), result in found.items():
            first = (sweep["builds"][0], model)
            if build == first[0] or first not in found:
                continue
            base = capacity_series(found[first], devices.get(first[0], "CPU"))
            candidate = capacity_series(result, devices.get(build, "CPU"))
            keys = ((first[0], model, sweep["sweep"], metrics.CAPACITY.name),
                    (build, model, sweep["sweep"], metrics.CAPACITY.name))
            if (base["value"] <= 0).any() or (candidate["value"] <= 0).any():
                empty = base.iloc[0:0]
                rows.append({**compare(LOAD_CAPACITY, empty, empty, *keys),
                             "note": "a round met the objectives at no level: no ratio to test"})
                continue
            rows.append(compare(LOAD_CAPACITY, base, candidate, *keys))
    return rows


def capacity_series(result: Mapping[str, Any], device: str = "CPU") -> pd.DataFrame:
    """A sweep's capacity by round (the rounds it used), as series() gives a cell's values, with what the build
    measured on."""
    used = [r for r in result["rounds"] if r["round"] in result["rounds_used"]]
    return pd.DataFrame({"value": [float(r["capacity"]) for r in used], "hostname": result["hostname"],
                         "device": device}, index=[int(r["round"]) for r in used])


def build_pairs(spec: Mapping[str, Any], current: list[str]) -> list[tuple[str, str]]:
    """(baseline, candidate) pairs of one named comparison: the baseline against each build, or, without
    a baseline, every pair; an empty build list means every current build."""
    builds = list(spec.get("builds") or current)
    baseline = spec.get("baseline")
    if baseline:
        return [(baseline, build) for build in builds if build != baseline]
    return list(itertools.combinations(builds, 2))


def compare(kind: Comparison, baseline: pd.DataFrame, candidate: pd.DataFrame, base_key: tuple, cand_key: tuple,
            metric: Metric | None = None) -> dict[str, Any]:
    """One comparison row: two cells' values paired by round, unless they come from different hosts; the better
    direction is the kind's, or the compared ``metric``'s where the kind takes it from the metric."""
    rounds = sorted(set(baseline.index) & set(candidate.index))
    a = [float(baseline.loc[r, "value"]) for r in rounds]
    b = [float(candidate.loc[r, "value"]) for r in rounds]
    row: dict[str, Any] = {
        "comparison": kind.name, "model": base_key[1], "test": base_key[3], "better": kind.better_for(metric),
        "baseline_build": base_key[0], "baseline_cell": base_key[2],
        "candidate_build": cand_key[0], "candidate_cell": cand_key[2], "paired_rounds": len(rounds),
        "rounds_used": rounds_text(rounds),
        "baseline_mean": statistics.geometric_mean(a), "candidate_mean": statistics.geometric_mean(b),
    }
    if {SOFTWARE_GPU, "GPU"} <= {d for frame in (baseline, candidate) if "device" in frame for d in frame["device"]}:
        return {**row, "note": "not compared: a software GPU's numbers (a functional check) against a hardware GPU's"}
    hosts = set(baseline["hostname"].dropna()) | set(candidate["hostname"].dropna())
    if len(hosts) > 1:
        return {**row, "note": f"not compared: measured on different hosts ({', '.join(sorted(hosts))})"}
    return {**row, **statistics.paired(a, b)}

"""Rule ``stats``: statistics over rounds per cell and test, paired comparisons, the roofline.

Every statistic is over a cell's round means (derive/statistics.py says why):
the mean with its confidence and prediction intervals, the coefficient of
variation that flags noisy cells, and comparisons - every setting against the
defaults cell of its build, and the config's named build comparisons on every
cell both measured - paired by round and corrected together over the run.
Cells from different hosts are not compared.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from llamabench.core import axes, matrix, records
from llamabench.core.status import Status
from llamabench.derive import statistics, tables

# Where a cell's layers went: the same in every round.
PLACEMENT = ("offloaded_layers", "model_layers", "op_offload")


def stats(smk: Any) -> None:
    """Rule ``stats``: results/stats.csv (per cell and test) and results/comparisons.csv."""
    table = records.read_table(Path(smk.input.csv), "summary_row")
    cells = cell_stats(table, smk.params.noisy_cv)
    cells = add_roofline(cells, records.read(smk.input.bandwidth, "bandwidth"),
                         {m["name"]: m for m in (records.read(p, "model") for p in smk.input.models)})
    pairs = comparisons(table, dict(smk.params.baseline), smk.params.alpha, dict(smk.params.comparisons))
    records.write_table(Path(smk.output.stats), cells)
    records.write_table(Path(smk.output.comparisons), pairs)


def round_means(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (build, model, base cell, test, round): that round's mean tokens/s and its samples."""
    ok = table[(table["status"] == Status.OK) & table["test"].notna()]
    return ok.rename(columns={"avg_ts": "round_mean"})


def cell_stats(table: pd.DataFrame, noisy_cv: float) -> pd.DataFrame:
    rows = []
    for (build, model, base, test), group in round_means(table).groupby(["build", "model", "base_cell", "test"]):
        group = group.sort_values("round")
        values = [float(v) for v in group["round_mean"]]
        mean = sum(values) / len(values)
        spread = statistics.cv(values)
        ci, pi = statistics.interval(values), statistics.interval(values, prediction=True)
        first = group.iloc[0]
        repetitions = [s for text in group["samples_ts"] for s in json.loads(text or "[]")]
        if ci[0] is not None:
            err = (mean - ci[0], ci[1] - mean, "95 % CI over rounds")
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
            "mean_ts": mean, "ci_low": ci[0], "ci_high": ci[1], "pi_low": pi[0], "pi_high": pi[1], "cv": spread,
            "noisy": bool(spread is not None and spread > noisy_cv),
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
        if tables.test_kind(row["test"]) != tables.TG or not gguf.get("weight_bytes_per_token"):
            continue
        kv = (gguf.get("kv_bytes_per_position_f16") or 0) * (row["n_depth"] + row["n_gen"] / 2)
        per_token = gguf["weight_bytes_per_token"] + kv
        ceiling = bandwidth["gb_per_s"] * 1e9 / per_token
        cells.loc[index, ["bytes_per_token", "ceiling_ts", "roofline_fraction"]] = [
            per_token, ceiling, row["mean_ts"] / ceiling]
    return cells


def comparisons(table: pd.DataFrame, base: Mapping[str, Any], alpha: float,
                named: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """Every setting against the defaults cell (same build, model and workload), and the config's named
    build comparisons on every cell both measured; paired by round, tested on log ratios, all corrected
    together (Benjamini-Hochberg)."""
    keyed = {key: group.set_index("round")
             for key, group in round_means(table).groupby(["build", "model", "base_cell", "test"])}
    base_id = matrix.cell_id(base)
    rows = []
    for (build, model, cell, test), group in keyed.items():
        first = group.iloc[0]
        same_workload = all(tables.value(first, axis) == base[axis] for axis in tables.WORKLOAD)
        if cell != base_id and same_workload and (build, model, base_id, test) in keyed:
            rows.append(compare("setting vs defaults", keyed[(build, model, base_id, test)], group,
                                (build, model, base_id, test), (build, model, cell, test)))
    builds = sorted(set(tables.current(table)["build"]))
    for name, spec in (named or {}).items():
        for first, second in build_pairs(spec, builds):
            for (build, model, cell, test), group in keyed.items():
                if build == first and (second, model, cell, test) in keyed:
                    rows.append({**compare("build vs build", group, keyed[(second, model, cell, test)],
                                           (first, model, cell, test), (second, model, cell, test)), "name": name})
    tested = [i for i, row in enumerate(rows) if row.get("p_value") is not None]
    for i, adjusted in zip(tested, statistics.adjust([rows[i]["p_value"] for i in tested])):
        rows[i]["p_adjusted"] = adjusted
    for row in rows:
        row["verdict"] = statistics.verdict(row.get("p_adjusted"), row.get("ratio"), alpha, row.get("note"))
    return records.frame((records.new("comparison_row", row) for row in rows), "comparison_row")


def build_pairs(spec: Mapping[str, Any], current: list[str]) -> list[tuple[str, str]]:
    """(baseline, candidate) pairs of one named comparison: the baseline against each build, or, without
    a baseline, every pair; an empty build list means every current build."""
    builds = list(spec.get("builds") or current)
    baseline = spec.get("baseline")
    if baseline:
        return [(baseline, build) for build in builds if build != baseline]
    return list(itertools.combinations(builds, 2))


def compare(kind: str, baseline: pd.DataFrame, candidate: pd.DataFrame, base_key: tuple, cand_key: tuple,
            ) -> dict[str, Any]:
    """One comparison row: two cells' round means paired by round, unless they come from different hosts."""
    rounds = sorted(set(baseline.index) & set(candidate.index))
    a = [float(baseline.loc[r, "round_mean"]) for r in rounds]
    b = [float(candidate.loc[r, "round_mean"]) for r in rounds]
    row: dict[str, Any] = {
        "comparison": kind, "model": base_key[1], "test": base_key[3],
        "baseline_build": base_key[0], "baseline_cell": base_key[2],
        "candidate_build": cand_key[0], "candidate_cell": cand_key[2], "paired_rounds": len(rounds),
        "baseline_mean_ts": sum(a) / len(a) if a else None,
        "candidate_mean_ts": sum(b) / len(b) if b else None,
    }
    hosts = set(baseline["hostname"].dropna()) | set(candidate["hostname"].dropna())
    if len(hosts) > 1:
        return {**row, "note": f"not compared: measured on different hosts ({', '.join(sorted(hosts))})"}
    return {**row, **statistics.paired(a, b)}

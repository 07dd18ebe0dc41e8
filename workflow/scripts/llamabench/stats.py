"""Conclusions that survive a noisy machine: statistics over rounds, paired comparisons, the roofline.

The repetitions llama-bench runs seconds apart cannot see a machine drifting
over minutes; the rounds can, because they are interleaved over the whole run.
So every statistic here is over a cell's **round means**:

- mean, a t-based 95 % confidence interval (with a handful of rounds a bootstrap
  is far too narrow) and a 95 % prediction interval for a future run's mean;
- the coefficient of variation, which flags noisy cells;
- comparisons pair two cells by round (the same drift hit both) and test the
  log of their ratio with a one-sample t-test; the p-values of every comparison
  in the run are corrected together (Benjamini-Hochberg); the effect is the ratio
  of means with its CI. Cells from different hosts are not compared.

With one round there is no spread over time: intervals are left empty and no
comparison is called significant.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scistats

from llamabench import matrix, records, summary

NO_DIFFERENCE = "no significant difference"
# Verdicts on tokens/s: higher is better.
IMPROVED, REGRESSED = "improved", "regressed"


def stats(smk: Any) -> None:
    """Rule ``stats``: results/stats.csv (per cell and test) and results/comparisons.csv."""
    table = records.read_table(Path(smk.input.csv), "summary_row")
    bench = dict(smk.params.benchmark)
    cells = cell_stats(table, bench["noisy_cv"])
    cells = add_roofline(cells, records.read(smk.input.bandwidth, "bandwidth"),
                         {m["name"]: m for m in (records.read(p, "model") for p in smk.input.models)})
    pairs = comparisons(table, matrix.baseline(bench), bench["alpha"], dict(smk.params.comparisons))
    records.write_table(Path(smk.output.stats), cells)
    records.write_table(Path(smk.output.comparisons), pairs)


def round_means(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (build, model, base cell, test, round): that round's mean tokens/s and its samples."""
    ok = table[(table["status"] == "ok") & table["test"].notna()]
    return ok.rename(columns={"avg_ts": "round_mean"})


def interval(values: list[float], prediction: bool) -> tuple[float | None, float | None]:
    """95 % t-interval of the mean (or, with ``prediction``, for one future round's mean)."""
    n = len(values)
    if n < 2:
        return None, None
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    half = scistats.t.ppf(0.975, n - 1) * sd * (math.sqrt(1 + 1 / n) if prediction else 1 / math.sqrt(n))
    return mean - half, mean + half


# Where a cell's layers went: the same in every round.
PLACEMENT = ("offloaded_layers", "model_layers", "op_offload")


def mean_of(values: pd.Series) -> float | None:
    """The mean over the rounds that have a value, None where none has."""
    present = values.dropna()
    return float(present.mean()) if len(present) else None


def cell_stats(table: pd.DataFrame, noisy_cv: float) -> pd.DataFrame:
    rows = []
    means = round_means(table)
    for (build, model, base, test), group in means.groupby(["build", "model", "base_cell", "test"]):
        group = group.sort_values("round")
        values = [float(v) for v in group["round_mean"]]
        mean = float(np.mean(values))
        cv = float(np.std(values, ddof=1) / mean) if len(values) > 1 and mean else None
        ci, pi = interval(values, False), interval(values, True)
        first = group.iloc[0]
        samples = [s for text in group["samples_ts"] for s in json.loads(text or "[]")]
        if ci[0] is not None:
            err = (mean - ci[0], ci[1] - mean, "95 % CI over rounds")
        else:  # one round: only the repetitions' spread is known
            sd = float(first["stddev_ts"] or 0)
            err = (sd, sd, "stddev of the repetitions (one round)")
        rows.append(records.new("stats_row", {
            "build": build, "history": bool(first["history"]), "model": model, "cell": base, "test": test,
            **{axis: first[axis] for axis in matrix.AXES},
            **{column: first[column] for column in PLACEMENT},
            **{column: mean_of(group[column]) for column in ("energy_j_per_token", "gpu_power_w")},
            "peak_vram_mib": group["peak_vram_mib"].max() if group["peak_vram_mib"].notna().any() else None,
            "energy_source": first["energy_source"],
            "rounds": len(values), "round_means": json.dumps([round(v, 3) for v in values]),
            "mean_ts": mean, "ci_low": ci[0], "ci_high": ci[1], "pi_low": pi[0], "pi_high": pi[1], "cv": cv,
            "noisy": bool(cv is not None and cv > noisy_cv),
            "err_low": err[0], "err_high": err[1], "err_kind": err[2],
            "busy_rounds": int(group["busy"].notna().sum()),
            "hostname": ", ".join(sorted(set(group["hostname"].dropna()))),
            "samples_ts": json.dumps(samples),
        }))
    return pd.DataFrame(rows, columns=records.columns("stats_row"))


def add_roofline(cells: pd.DataFrame, bandwidth: dict[str, Any], models: dict[str, dict[str, Any]],
                 ) -> pd.DataFrame:
    """For tg: bytes read per generated token (weights, plus the KV cache at the cell's mean context) and
    the bandwidth ceiling they imply; pp is bound by compute, whose peak is not estimated here."""
    cells = cells.copy()
    for index, row in cells.iterrows():
        gguf = models.get(row["model"], {}).get("gguf", {})
        if not str(row["test"]).startswith("tg") or not gguf.get("weight_bytes_per_token"):
            continue
        kv = (gguf.get("kv_bytes_per_position_f16") or 0) * (row["n_depth"] + row["n_gen"] / 2)
        per_token = gguf["weight_bytes_per_token"] + kv
        ceiling = bandwidth["gb_per_s"] * 1e9 / per_token
        cells.loc[index, ["bytes_per_token", "ceiling_ts", "roofline_fraction"]] = [
            per_token, ceiling, row["mean_ts"] / ceiling]
    return cells


def comparisons(table: pd.DataFrame, base: dict[str, Any], alpha: float,
                named: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    """Every setting against the defaults cell (same build, model and workload), and the config's named
    build comparisons on every cell both measured; paired by round, tested on log ratios, all corrected
    together (Benjamini-Hochberg)."""
    means = round_means(table)
    keyed = {key: group.set_index("round") for key, group in means.groupby(["build", "model", "base_cell", "test"])}
    base_id = matrix.cell_id(base)
    rows = []
    for (build, model, cell, test), group in keyed.items():
        row0 = group.iloc[0]
        same_workload = all(str(row0[a]) == str(base[a]) for a in summary.WORKLOAD)
        if cell != base_id and same_workload and (build, model, base_id, test) in keyed:
            rows.append(compare("setting vs defaults", keyed[(build, model, base_id, test)], group,
                                (build, model, base_id, test), (build, model, cell, test)))
    builds = sorted(set(summary.current(table)["build"]))
    for name, spec in (named or {}).items():
        for first, second in build_pairs(spec, builds):
            for (build, model, cell, test), group in keyed.items():
                if build == first and (second, model, cell, test) in keyed:
                    rows.append({**compare("build vs build", group, keyed[(second, model, cell, test)],
                                           (first, model, cell, test), (second, model, cell, test)), "name": name})
    frame = pd.DataFrame(rows, columns=[c for c in records.columns("comparison_row")])
    tested = frame["p_value"].notna()
    if tested.any():
        frame.loc[tested, "p_adjusted"] = scistats.false_discovery_control(frame.loc[tested, "p_value"].astype(float))
    frame["verdict"] = [verdict(r, alpha) for r in frame.itertuples()]
    return pd.DataFrame([records.new("comparison_row", r) for r in frame.to_dict("records")],
                        columns=records.columns("comparison_row"))


def named_comparison(pairs: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of one named build comparison (comparisons: in the config)."""
    return pairs[(pairs["comparison"] == "build vs build") & (pairs["name"] == name)]


def build_pairs(spec: dict[str, Any], current: list[str]) -> list[tuple[str, str]]:
    """(baseline, candidate) pairs of one named comparison: the baseline against each build, or, without
    a baseline, every pair; an empty build list means every current build."""
    builds = list(spec.get("builds") or current)
    baseline = spec.get("baseline")
    if baseline:
        return [(baseline, build) for build in builds if build != baseline]
    return list(itertools.combinations(builds, 2))


def compare(kind: str, baseline: pd.DataFrame, candidate: pd.DataFrame, base_key: tuple, cand_key: tuple,
            ) -> dict[str, Any]:
    rounds = sorted(set(baseline.index) & set(candidate.index))
    a = np.array([float(baseline.loc[r, "round_mean"]) for r in rounds])
    b = np.array([float(candidate.loc[r, "round_mean"]) for r in rounds])
    row: dict[str, Any] = {
        "comparison": kind, "model": base_key[1], "test": base_key[3],
        "baseline_build": base_key[0], "baseline_cell": base_key[2],
        "candidate_build": cand_key[0], "candidate_cell": cand_key[2], "paired_rounds": len(rounds),
        "baseline_mean_ts": float(a.mean()) if len(a) else None,
        "candidate_mean_ts": float(b.mean()) if len(b) else None,
    }
    hosts = set(baseline["hostname"].dropna()) | set(candidate["hostname"].dropna())
    if len(hosts) > 1:
        return {**row, "note": f"not compared: measured on different hosts ({', '.join(sorted(hosts))})"}
    if len(rounds) == 0:
        return {**row, "note": "no round measured both"}
    row["ratio"] = float(b.mean() / a.mean())
    if len(rounds) < 2:
        return {**row, "note": "one paired round: no test possible"}
    logs = np.log(b / a)
    low, high = interval(list(logs), False)
    if np.ptp(logs) == 0:  # no spread at all (identical copies): the t statistic is undefined
        p_value = 1.0 if logs[0] == 0 else 0.0
    else:
        p_value = float(scistats.ttest_1samp(logs, 0.0).pvalue)
    row.update(ratio_ci_low=math.exp(low), ratio_ci_high=math.exp(high), p_value=p_value)
    return row


def verdict(row: Any, alpha: float) -> str:
    if not isinstance(row.p_adjusted, float) or math.isnan(row.p_adjusted):
        return row.note if isinstance(row.note, str) else "not tested"
    if row.p_adjusted >= alpha:
        return NO_DIFFERENCE
    return IMPROVED if row.ratio > 1 else REGRESSED


def best_settings(cells: pd.DataFrame, pairs: pd.DataFrame, base: dict[str, Any]) -> pd.DataFrame:
    """Per build, model and test: the setting significantly faster than the defaults (the largest such
    ratio), or "no significant difference" when the tests support none."""
    rows = []
    base_id = matrix.cell_id(base)
    own = pairs[pairs["comparison"] == "setting vs defaults"]
    now = summary.current(cells)
    defaults = now[now["cell"] == base_id]
    for (build, model), group in defaults.groupby(["build", "model"]):
        for _, ref in group.iterrows():
            label = "tg t/s" if str(ref["test"]).startswith("tg") else "pp t/s"
            tested = own[(own["baseline_build"] == build) & (own["model"] == model) & (own["test"] == ref["test"])]
            winners = tested[tested["verdict"] == IMPROVED]
            row = {"build": build, "model": model, "metric": label, "defaults_value": round(ref["mean_ts"], 2)}
            if winners.empty:
                rows.append({**row, "best_cell": base_id, "setting": f"defaults ({NO_DIFFERENCE} found)",
                             "value": round(ref["mean_ts"], 2), "speedup_vs_defaults": 1.0,
                             "significant": False})
                continue
            best = winners.loc[winners["ratio"].idxmax()]
            cell = cells[(cells["build"] == build) & (cells["model"] == model)
                         & (cells["cell"] == best["candidate_cell"]) & (cells["test"] == ref["test"])].iloc[0]
            rows.append({**row, "best_cell": best["candidate_cell"], "setting": summary.setting_text(cell, base),
                         "value": round(best["candidate_mean_ts"], 2), "speedup_vs_defaults": round(best["ratio"], 3),
                         "significant": True, "p_adjusted": best["p_adjusted"]})
    return pd.DataFrame(rows, columns=summary.BEST_COLUMNS)


def sweep(cells: pd.DataFrame, free: set[str], base: dict[str, Any]) -> pd.DataFrame:
    """Cell statistics whose axes outside ``free`` all keep their default value: one figure's slice."""
    ok = cells.astype({"test": str})
    mask = pd.Series(True, index=ok.index)
    for axis in matrix.AXES:
        if axis not in free:
            mask &= axis_text(ok, axis) == matrix.text(axis, matrix.value(base, axis))
    return ok[mask]


def axis_text(table: pd.DataFrame, axis: str) -> pd.Series:
    """An axis column as matrix.text spells its values (rows that predate an optional axis included)."""
    values = table[axis] if axis in table else pd.Series(None, index=table.index, dtype=object)
    return values.astype(object).map(lambda v: matrix.text(axis, v))


def answers(cells: pd.DataFrame, pairs: pd.DataFrame, base: dict[str, Any]) -> pd.DataFrame:
    """The lab report's questions, one figures-table row each: per swept figure (best threads, best batch,
    best GPU layers), build, model and metric, the fastest value of that sweep, and whether it beats the
    defaults significantly."""
    rows = []
    own = pairs[pairs["comparison"] == "setting vs defaults"]
    base_id = matrix.cell_id(base)
    for name, (x_axis, split, _) in matrix.FIGURES.items():
        data = sweep(summary.current(cells), {x_axis, split} - {None}, base)
        data = data[~data["test"].str.contains("+", regex=False)]
        for (build, model, kind), group in data.groupby(["build", "model", data["test"].str[:2]]):
            if group["cell"].nunique() < 2:
                continue  # not swept for this build
            best = group.loc[group["mean_ts"].idxmax()]
            ref = group[group["cell"] == base_id]
            tested = own[(own["candidate_cell"] == best["cell"]) & (own["baseline_build"] == build)
                         & (own["model"] == model) & (own["test"] == best["test"])]
            significant = bool(len(tested)) and tested.iloc[0]["verdict"] == IMPROVED
            rows.append({"build": build, "model": model, "metric": f"best {name} for {kind} t/s",
                         "best_cell": best["cell"], "setting": summary.setting_text(best, base),
                         "value": round(float(best["mean_ts"]), 2),
                         "defaults_value": round(float(ref.iloc[0]["mean_ts"]), 2) if len(ref) else None,
                         "speedup_vs_defaults": round(float(best["mean_ts"] / ref.iloc[0]["mean_ts"]), 3)
                         if len(ref) else None,
                         "significant": significant,
                         "p_adjusted": tested.iloc[0]["p_adjusted"] if len(tested) else None})
    return pd.DataFrame(rows, columns=summary.BEST_COLUMNS)

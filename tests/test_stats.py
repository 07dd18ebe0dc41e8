"""Statistics over rounds on recorded real round data (tests/data/README.md): intervals (on the log scale for
positive quantities), paired tests, the multiple-comparison correction, and a figures table that names no winner
the tests do not support."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from conftest import DEFAULT_CONFIG, ROOT
from llamabench import findings, rpc_summary, stats
from llamabench.core import axes, matrix, records
from llamabench.derive import statistics, tables, workloads

ROUNDS = ROOT / "tests" / "data" / "rounds-0c1e570-cpu-gemma3-270m.csv"
RPC_CELLS = sorted((ROOT / "tests" / "data" / "rpc-netns-0c1e570").glob("*.json"))
LOAD_LEVELS = json.loads((ROOT / "tests" / "data" / "load-levels-gemma3-270m.json").read_text())["levels"]
BASE = matrix.baseline({**DEFAULT_CONFIG["benchmark"]})
DEFAULTS = matrix.cell_id(BASE)
UB128 = matrix.cell_id({**BASE, "ubatch_size": 128})


def recorded() -> pd.DataFrame:
    """Real summary rows: the defaults cell and the ubatch-128 cell, three interleaved rounds each."""
    table = pd.read_csv(ROUNDS).assign(history=False)  # recorded before kept versions existed
    return records.typed(table.reindex(columns=records.columns("summary_row")), "summary_row")


def figures_table(rows: list[dict]) -> pd.DataFrame:
    """Finding rows as the figures table shows them."""
    return tables.figures_table(records.frame(rows, "finding_row"))


def scaled(table: pd.DataFrame, cell: str, factor_by_round: dict[int, float]) -> pd.DataFrame:
    table = table.copy()
    for r, factor in factor_by_round.items():
        rows = (table["base_cell"] == cell) & (table["round"] == r)
        table.loc[rows, "avg_ts"] *= factor
    return table


def verdicts(table: pd.DataFrame, alpha: float = 0.05) -> dict[tuple[str, str], str]:
    pairs = stats.comparisons(table, BASE, alpha)
    own = pairs[pairs["comparison"] == "setting vs defaults"]
    return {(row.candidate_cell, row.test): row.verdict for row in own.itertuples()}


def test_the_recorded_data_are_three_interleaved_rounds_of_two_cells() -> None:
    table = recorded()
    assert sorted(table["base_cell"].unique()) == sorted([DEFAULTS, UB128])
    assert sorted(table["round"].unique()) == [1, 2, 3]


def test_intervals_are_t_based_over_round_means() -> None:
    values = [100.0, 110.0, 105.0]
    low, high = statistics.interval(values, prediction=False)
    half = 2 * 4.302652729911275 * np.std(values, ddof=1) / math.sqrt(3) / 2
    assert (low, high) == pytest.approx((105 - half, 105 + half))
    p_low, p_high = statistics.interval(values, prediction=True)
    assert p_low < low and p_high > high  # a future run varies more than the mean does
    assert statistics.interval([100.0], prediction=False) == (None, None)


def test_a_positive_quantity_s_interval_is_the_t_interval_of_its_logs_around_the_geometric_mean() -> None:
    values = [100.0, 110.0, 105.0]
    logs = np.log(values)
    half = 4.302652729911275 * np.std(logs, ddof=1) / math.sqrt(3)
    assert statistics.geometric_mean(values) == pytest.approx(math.exp(logs.mean()))
    expected = (math.exp(logs.mean() - half), math.exp(logs.mean() + half))
    assert statistics.log_interval(values) == pytest.approx(expected)
    assert statistics.log_interval([100.0]) == (None, None) and statistics.geometric_mean([]) is None
    # a value at or below 0 is a broken measurement: no mean, no interval, no ratio, rather than a wrong one
    assert statistics.log_interval([100.0, 0.0]) == (None, None) and statistics.geometric_mean([0.0, 1.0]) is None
    assert statistics.paired([100.0, 0.0], [90.0, 80.0]) == {"note": "a round's value is not positive: no ratio"}


def test_a_recorded_ttft_p90_that_varies_by_half_has_no_negative_prediction_bound() -> None:
    """The sweep's level at 1.18 requests/s, TTFT p90 over its three rounds (884, 521, 440 ms): a linear
    t-interval predicts a future round from -560 ms; on the log scale every bound is a time."""
    p90 = [float(np.percentile([r["ttft_ms"] for r in requests], 90)) for _, requests in
           sorted(LOAD_LEVELS["1.18"].items())]
    assert statistics.interval(p90, prediction=True)[0] < 0
    low, high = statistics.log_interval(p90, prediction=True)
    assert 0 < low < statistics.geometric_mean(p90) < high
    assert (low, high) == pytest.approx((96.32, 3582.9), rel=1e-3)  # by hand: exp(mean ± t·sd·√(4/3)) of the logs


def positive_series() -> Iterator[tuple[str, list[float]]]:
    """Every positive series in the recorded data: each cell's round means and each round's repetitions (t/s),
    each load level's TTFT, end-to-end latency and inter-token gaps per round (ms), and each level's TTFT p50
    and p90 over its rounds."""
    table = recorded()
    for (cell, test), group in table.groupby(["base_cell", "test"]):
        yield f"{cell} {test} round means", list(group.sort_values("round")["avg_ts"])
    for row in table.itertuples():
        yield f"{row.base_cell} {row.test} round {row.round} repetitions", json.loads(row.samples_ts)
    for rate, rounds in LOAD_LEVELS.items():
        for round_, requests in sorted(rounds.items()):
            for metric in ("ttft_ms", "e2e_ms"):
                yield f"{rate}/s round {round_} {metric}", [r[metric] for r in requests]
            yield f"{rate}/s round {round_} itl gaps", [gap for r in requests for gap in r["itl_ms"]]
        for q in (50, 90):
            yield f"{rate}/s ttft p{q}", [float(np.percentile([r["ttft_ms"] for r in requests], q))
                                         for _, requests in sorted(rounds.items())]


def resampled(values: list[float], draws: int = 3) -> Iterator[list[float]]:
    """The series itself and a few seeded bootstrap resamplings of it."""
    rng = np.random.default_rng(len(values))
    yield values
    for _ in range(draws):
        yield [float(v) for v in rng.choice(values, size=len(values))]


def test_every_recorded_positive_series_has_positive_bounds_around_its_geometric_mean() -> None:
    for name, series in positive_series():
        assert min(series) > 0, name
        for values in resampled(series):
            mean = statistics.geometric_mean(values)
            for prediction in (False, True):
                low, high = statistics.log_interval(values, prediction=prediction)
                assert 0 < low <= mean <= high, (name, prediction, values)


def test_a_paired_ratio_lies_within_its_ci_and_is_the_ratio_of_geometric_means() -> None:
    """Pairs from the recorded data: ubatch 128 against the defaults by round, and each level's end-to-end
    latency against its TTFT by request; each also resampled (pairs kept together)."""
    table = recorded()
    pairs = []
    for _, group in table.groupby("test"):
        by_cell = {cell: list(rows.sort_values("round")["avg_ts"]) for cell, rows in group.groupby("base_cell")}
        pairs.append((by_cell[DEFAULTS], by_cell[UB128]))
    pairs += [([r["ttft_ms"] for r in requests], [r["e2e_ms"] for r in requests])
              for rounds in LOAD_LEVELS.values() for requests in rounds.values()]
    for a, b in pairs:
        rng = np.random.default_rng(len(a))
        for picks in [np.arange(len(a)), *(rng.choice(len(a), size=len(a)) for _ in range(3))]:
            base, cand = [a[i] for i in picks], [b[i] for i in picks]
            found = statistics.paired(base, cand)
            assert found["ratio"] == pytest.approx(statistics.geometric_mean(cand) / statistics.geometric_mean(base))
            if "ratio_ci_low" in found:  # a resampling of one pair repeated has no spread, still an interval
                assert 0 < found["ratio_ci_low"] <= found["ratio"] <= found["ratio_ci_high"]


def test_cell_statistics_on_real_rounds() -> None:
    cells = stats.cell_stats(recorded(), noisy_cv=0.05)
    assert len(cells) == 4 and set(cells["rounds"]) == {3}
    assert (0 < cells["pi_low"]).all() and (cells["pi_low"] <= cells["ci_low"]).all()
    assert (cells["ci_low"] < cells["mean_ts"]).all() and (cells["mean_ts"] < cells["ci_high"]).all()
    geometric = [math.exp(np.mean(np.log(json.loads(text)))) for text in cells["round_means"]]
    assert list(cells["mean_ts"]) == pytest.approx(geometric, rel=1e-4)  # round_means are kept to 3 decimals
    assert set(cells["err_kind"]) == {"95 % CI over rounds"} and (cells[["err_low", "err_high"]] > 0).all().all()


def test_a_comparison_row_is_on_one_scale() -> None:
    """The ratio, its CI and p are all of log ratios: the ratio is the candidate's geometric mean over the
    baseline's, both as the row gives them."""
    pairs = stats.comparisons(recorded(), BASE, 0.05)
    assert len(pairs) == 2
    assert list(pairs["ratio"]) == pytest.approx(list(pairs["candidate_mean"] / pairs["baseline_mean"]))
    assert ((pairs["ratio_ci_low"] < pairs["ratio"]) & (pairs["ratio"] < pairs["ratio_ci_high"])).all()


def test_a_known_drift_does_not_make_a_winner() -> None:
    """The machine slows by 15 % per round, for every cell alike: paired by round, the drift cancels,
    and the figures table names no winner that the test does not support."""
    table = recorded()
    drift = {1: 1.0, 2: 0.85, 3: 0.70}
    drifted = scaled(scaled(table, DEFAULTS, drift), UB128, drift)
    assert verdicts(drifted) == verdicts(table) == {(UB128, "pp128"): statistics.NO_DIFFERENCE,
                                                    (UB128, "tg32"): statistics.NO_DIFFERENCE}
    best = figures_table(findings.best_settings(stats.cell_stats(drifted, 0.05), stats.comparisons(drifted, BASE, 0.05),
                                                BASE))
    assert not best["significant"].any()
    assert all(setting == f"defaults ({statistics.NO_DIFFERENCE} found)" for setting in best["setting"])


def test_a_real_gain_is_found_and_a_lucky_cell_is_not() -> None:
    table = recorded()
    faster = scaled(table, UB128, {1: 1.5, 2: 1.5, 3: 1.5})
    assert verdicts(faster)[(UB128, "tg32")] == statistics.IMPROVED
    best = figures_table(findings.best_settings(stats.cell_stats(faster, 0.05), stats.comparisons(faster, BASE, 0.05),
                                                BASE))
    tg = best[best["metric"] == "tg t/s"].iloc[0]
    assert tg["significant"] and tg["best_cell"] == UB128 and tg["speedup_vs_defaults"] > 1.2
    # One lucky round (+30 % once, nothing the other times) is not supported by the test.
    lucky = scaled(table, UB128, {1: 1.3})
    assert verdicts(lucky)[(UB128, "tg32")] == statistics.NO_DIFFERENCE


def test_identical_copies_under_two_names_are_no_difference() -> None:
    """Degenerate A/A (the same numbers twice): no spread, no difference. The real A/A, two builds measured
    separately in interleaved rounds, is tests/test_rounds.py::test_a_build_against_itself_shows_no_difference."""
    table = recorded()
    other = table.assign(build="cpu-again")
    pairs = stats.comparisons(pd.concat([table, other]), BASE, 0.05, {"aa": {"builds": []}})
    across = pairs[pairs["comparison"] == "build vs build"]
    assert len(across) == 4 and set(across["verdict"]) == {statistics.NO_DIFFERENCE} and set(across["name"]) == {"aa"}


def test_a_named_comparison_pairs_its_baseline_with_each_build_and_a_kept_version() -> None:
    """A kept version (history label) is a build like any other in a comparison, and only named pairs are tested."""
    table = recorded()
    kept = table.assign(build="cpu@79e0b68", history=True)
    slower = scaled(table, UB128, {1: 0.6, 2: 0.6, 3: 0.6}).assign(build="new")
    both = pd.concat([kept, table, slower])
    pairs = stats.comparisons(both, BASE, 0.05, {"upgrade": {"baseline": "cpu@79e0b68", "builds": ["new"]}})
    across = pairs[pairs["comparison"] == "build vs build"].set_index(["baseline_cell", "test"])
    assert set(across["baseline_build"]) == {"cpu@79e0b68"} and set(across["candidate_build"]) == {"new"}
    assert across.loc[(UB128, "tg32"), "verdict"] == statistics.REGRESSED
    assert across.loc[(DEFAULTS, "tg32"), "verdict"] == statistics.NO_DIFFERENCE
    assert stats.build_pairs({"builds": []}, ["a", "b", "c"]) == [("a", "b"), ("a", "c"), ("b", "c")]
    best = figures_table(findings.best_settings(tables.current(stats.cell_stats(both, 0.05)), pairs, BASE))
    assert "cpu@79e0b68" not in set(best["build"])  # best settings are for current builds only


def test_cells_of_two_hosts_are_not_compared() -> None:
    table = recorded()
    table.loc[table["base_cell"] == UB128, "hostname"] = "elsewhere"
    assert all(v.startswith("not compared: measured on different hosts") for v in verdicts(table).values())


def test_a_software_gpu_is_never_compared_with_a_hardware_gpu() -> None:
    """The recorded rounds under three labels: a build on lavapipe (its rows labelled), a CUDA build and a CPU build.
    Software against hardware GPU is not compared; each against the CPU build is (labelled in the findings)."""
    table = recorded()
    software = table.assign(build="lavapipe", software_device="software GPU (lavapipe): a functional check, not GPU "
                            "performance", options="-DGGML_VULKAN=ON")
    cuda = table.assign(build="cuda", options="-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90")
    pairs = stats.comparisons(pd.concat([table, software, cuda]), BASE, 0.05, {"all": {"builds": []}})
    across = pairs[pairs["comparison"] == "build vs build"]
    mixed = across[{"lavapipe", "cuda"} == across[["baseline_build", "candidate_build"]].apply(set, axis=1)]
    assert len(mixed) == 4 and mixed["verdict"].str.startswith("not compared: a software GPU's numbers").all()
    assert mixed["p_value"].isna().all()
    with_cpu = across[across["baseline_build"] == "cpu"]
    assert len(with_cpu) == 8 and with_cpu["p_value"].notna().all()


def test_the_correction_covers_every_comparison() -> None:
    p = [0.01, 0.02, 0.03, 0.5]
    adjusted = statistics.adjust(p)
    assert adjusted[0] == pytest.approx(0.04) and adjusted[-1] == pytest.approx(0.5)
    assert list(tables.FIGURES_TABLE)[-2:] == ["significant", "p_adjusted"]


def test_the_conclusions_name_the_fastest_value_of_each_sweep_and_whether_it_is_supported() -> None:
    """The batch sweep (defaults vs ubatch 128): a real gain is the best batch and significant; noise is not."""
    table = recorded()
    gain = scaled(table, UB128, {1: 1.5, 2: 1.5, 3: 1.5})
    cells = stats.cell_stats(gain, 0.05)
    rows = figures_table(findings.best_sweeps(cells, stats.comparisons(gain, BASE, 0.05), BASE)).set_index("metric")
    assert set(rows.index) == {"best batch for pp t/s", "best batch for tg t/s"}  # threads and ngl not swept
    assert rows.loc["best batch for tg t/s", "best_cell"] == UB128 and rows.loc["best batch for tg t/s", "significant"]
    assert rows.loc["best batch for tg t/s", "setting"] == "ubatch_size=128"
    swept = findings.best_sweeps(cells, stats.comparisons(gain, BASE, 0.05), BASE)
    said = {row["metric"]: row["statement"] for row in swept}
    assert ": use ubatch_size=128 for generation: " in said["tg t/s"]
    assert "× faster than the defaults (95 % CI " in said["tg t/s"]
    plain = figures_table(findings.best_sweeps(stats.cell_stats(table, 0.05), stats.comparisons(table, BASE, 0.05),
                                               BASE))
    assert not plain["significant"].any()
    said = [row["statement"] for row in findings.best_sweeps(stats.cell_stats(table, 0.05),
                                                            stats.comparisons(table, BASE, 0.05), BASE)]
    assert all("batch makes no significant difference to" in s or "the defaults are the fastest batch" in s
               for s in said), said


# No serving data recorded here varies the prompt length (tests/data/README.md: the load levels are one 64-token
# prompt), so the workload findings are tested on the recorded llama-bench rounds: each round's real cost of a prompt
# token (pp128's time / 128) and of one generated token (1 / tg32) make the first-token wait llama-bench predicts for
# a prompt of p tokens in that round (derive/tables.py ttft_estimate), a known line per round.
SERVING_BASE = axes.normalize({a.name: a.default for a in axes.of(axes.SERVING)}, axes.SERVING)


def recorded_costs(cell: str = DEFAULTS) -> pd.DataFrame:
    """Per round of one recorded cell: ms per prompt token, ms for the first generated token, tokens/s generated."""
    table = recorded()
    own = table[table["base_cell"] == cell].set_index(["round", "test"])
    return pd.DataFrame({"ms_per_token": own.xs("pp128", level="test")["avg_ns"] / 1e6 / 128,
                         "first_ms": 1000 / own.xs("tg32", level="test")["avg_ts"],
                         "tg_ts": own.xs("tg32", level="test")["avg_ts"]})


def served(cells: dict[tuple[int, int, int], pd.DataFrame]) -> pd.DataFrame:
    """Serving summary rows of cells (prompt tokens, concurrency, slots) -> per round TTFT p50 and aggregate t/s."""
    rows = []
    for (prompt, concurrency, slots), values in cells.items():
        params = {**SERVING_BASE, "prompt_tokens": prompt, "concurrency": concurrency, "parallel": slots}
        base = matrix.cell_id(params, axes.SERVING)
        rows += [{"build": "cpu", "history": False, "model": "gemma3-270m", "cell": f"{base}_round-{r}",
                  "base_cell": base, "round": int(r), "status": "ok", "hostname": "vm", **params,
                  "ttft_p50_ms": float(v["ttft_p50_ms"]), "aggregate_tps": float(v["aggregate_tps"])}
                 for r, v in values.iterrows()]
    return records.frame(rows, "serving_row")


def estimated(prompt: int, costs: pd.DataFrame) -> pd.DataFrame:
    """Each round's first-token wait for ``prompt`` tokens at the recorded costs, and its generation speed."""
    return pd.DataFrame({"ttft_p50_ms": prompt * costs["ms_per_token"] + costs["first_ms"],
                         "aggregate_tps": costs["tg_ts"]})


def metrics_of(table: pd.DataFrame) -> pd.DataFrame:
    return stats.metric_stats(stats.serving_series(table, {"ok"}), 0.05)


def test_cells_that_change_the_work_are_described_not_compared() -> None:
    """Prompt lengths 32, 64 and 128 at the defaults' other axes: none is compared with the defaults (prompt 128);
    one slot instead of two is a setting, compared. The findings fit how TTFT grows per prompt token and call
    nothing improved or regressed."""
    costs = recorded_costs()
    cells = {(p, 1, 2): estimated(p, costs) for p in (32, 64, 128)}
    table = served({**cells, (128, 1, 1): estimated(128, costs)})
    defaults = matrix.cell_id(SERVING_BASE, axes.SERVING)
    pairs = stats.serving_pairs(table, {"ok"}, defaults)
    compared = {row["candidate_cell"] for row in pairs if row["comparison"] == "serving setting vs defaults"}
    assert compared == {matrix.cell_id({**SERVING_BASE, "parallel": 1}, axes.SERVING)}
    [found] = findings.prompt_cost(table, metrics_of(table))
    known = costs["ms_per_token"].mean()  # with every round at every length, the fit's slope is the rounds' mean
    assert found["value"] == pytest.approx(known, rel=1e-3)
    assert found["value_ci_low"] < known < found["value_ci_high"]
    assert found["statement"].startswith(f"cpu / gemma3-270m: TTFT p50 grows by {known:.2f} ms per prompt token "
                                         "(95 % CI ")
    assert "over prompts of 32, 64 and 128 tokens, at parallel 2 (a line through 9 round values)." in found["statement"]
    assert found["question"] == "ttft_per_prompt_token" and found["verdict"] is None and found["significant"] is None


def test_two_prompt_lengths_give_the_difference_per_token_paired_by_round() -> None:
    """With two lengths, each round's difference per token (the drift of the machine cancels, as in a paired test):
    exactly the round's recorded cost of a prompt token, so the interval is the t-interval of those costs."""
    costs = recorded_costs()
    drift = pd.Series({1: 1.0, 2: 0.85, 3: 0.7})  # the machine slows by 15 % a round: the same for both lengths
    drifted = costs.mul(1 / drift, axis=0)
    fit = workloads.per_unit([32, 32, 32, 128, 128, 128], [1, 2, 3] * 2,
                             [*estimated(32, drifted)["ttft_p50_ms"], *estimated(128, drifted)["ttft_p50_ms"]])
    assert fit["method"] == workloads.PAIRED and fit["points"] == 3
    assert fit["slope"] == pytest.approx(drifted["ms_per_token"].mean())
    assert (fit["ci_low"], fit["ci_high"]) == pytest.approx(statistics.interval(list(drifted["ms_per_token"])))
    assert workloads.per_unit([128, 128], [1, 2], [50.0, 51.0]) is None  # one length: nothing to describe


def test_the_best_serving_setting_is_chosen_within_one_workload() -> None:
    """Prompts of 32, 64 and 128 tokens with two slots, and 128 with one: the shortest prompt has the lowest TTFT
    but is not a setting; only the two slot counts at prompt 128 are ranked."""
    costs = recorded_costs()
    cells = {(p, 1, 2): estimated(p, costs) for p in (32, 64, 128)}
    table = served({**cells, (128, 1, 1): estimated(128, costs * 1.1)})
    lowest = [row for row in findings.best_serving(table, metrics_of(table), 1000.0)
              if row["question"] == "lowest_ttft"]
    assert [row["cell"] for row in lowest] == [matrix.cell_id(SERVING_BASE, axes.SERVING)]
    assert lowest[0]["statement"].startswith("cpu / gemma3-270m at prompt_tokens 128: the lowest measured TTFT p50 is ")


def test_concurrency_is_described_with_no_verdict() -> None:
    """Concurrency 1 and 2 at the defaults' prompt (the recorded costs; at 2, twice the throughput and a 1.6× wait):
    each concurrency's throughput and TTFT, no comparison and no verdict."""
    costs = recorded_costs()
    loaded = costs.mul(pd.Series({"ms_per_token": 1.6, "first_ms": 1.6, "tg_ts": 2.0}))
    table = served({(128, 1, 2): estimated(128, costs), (128, 2, 2): estimated(128, loaded)})
    assert not [row for row in stats.serving_pairs(table, {"ok"}, matrix.cell_id(SERVING_BASE, axes.SERVING))
                if row["comparison"] == "serving setting vs defaults"]
    [found] = findings.concurrency_effect(table, metrics_of(table))
    assert found["value"] == pytest.approx(2 * found["reference_value"], rel=1e-3)
    assert found["statement"].startswith("cpu / gemma3-270m: concurrency 1 → 2 serves ")
    assert " aggregate t/s with TTFT p50 " in found["statement"] and found["verdict"] is None
    for said in (found["statement"], *(row["statement"] for row in findings.prompt_cost(table, metrics_of(table)))):
        assert statistics.IMPROVED not in said and statistics.REGRESSED not in said


def test_what_rpc_costs_is_said_as_a_cost_not_a_verdict() -> None:
    pair = {"ratio": 0.8, "ratio_ci_low": 0.75, "ratio_ci_high": 0.85, "candidate_mean": 40.0, "baseline_mean": 50.0,
            "verdict": statistics.REGRESSED}
    said = findings.rpc_sentence("cpu-rpc", "gemma3-270m", "-dev RPC0", pair)
    assert said.endswith("costs 20% of generation speed (40.0 t/s against 50.0 t/s on the client alone, 95 % CI "
                         "15%-25%): significant.")
    pair = {**pair, "ratio_ci_low": 0.6, "ratio_ci_high": 1.05, "verdict": statistics.NO_DIFFERENCE}
    said = findings.rpc_sentence("cpu-rpc", "gemma3-270m", "-dev RPC0", pair)
    assert said.endswith("): no significant cost.") and statistics.REGRESSED not in said


def test_each_rpc_cell_is_compared_with_its_own_local_partner() -> None:
    """Recorded real RPC cells of a netns sweep (three link rates, each with -dev RPC0/RPC1 and -dev none): the
    summary names each cell's partner of the same topology and rate (``local_cell``), and the statistics pair
    each RPC cell with exactly that one — the relation is read from the records, never rebuilt from an id."""
    table = rpc_summary.summarize(RPC_CELLS)
    assert len(table) == 6 and set(table["status"]) == {"ok"}
    local = table[table["devices"] == "none"].set_index(["topology", "link_rate"])["base_cell"]
    through = table[table["devices"] != "none"]
    assert len(through) == 3
    for row in through.itertuples():
        assert row.local_cell == local[(row.topology, row.link_rate)] != row.base_cell
        assert row.local_tg_ts == pytest.approx(float(table.set_index("base_cell").loc[row.local_cell, "tg_ts"]))
    pairs = stats.rpc_pairs(table, {"ok"})
    assert len(pairs) == 2 * len(through)  # pp and tg
    assert {(p["candidate_cell"], p["baseline_cell"]) for p in pairs} == set(zip(through["base_cell"],
                                                                               through["local_cell"]))

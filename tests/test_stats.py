"""Statistics over rounds on recorded real round data (tests/data/README.md): intervals, paired tests,
the multiple-comparison correction, and a figures table that names no winner the tests do not support."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conftest import DEFAULT_CONFIG, ROOT
from llamabench import findings, stats
from llamabench.core import matrix, records
from llamabench.derive import statistics, tables

ROUNDS = ROOT / "tests" / "data" / "rounds-0c1e570-cpu-gemma3-270m.csv"
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


def test_cell_statistics_on_real_rounds() -> None:
    cells = stats.cell_stats(recorded(), noisy_cv=0.05)
    assert len(cells) == 4 and set(cells["rounds"]) == {3}
    assert (cells["ci_low"] < cells["mean_ts"]).all() and (cells["mean_ts"] < cells["ci_high"]).all()
    assert (cells["pi_low"] <= cells["ci_low"]).all()
    assert set(cells["err_kind"]) == {"95 % CI over rounds"}


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
    said = {row["metric"]: row["statement"] for row in findings.best_sweeps(cells, stats.comparisons(gain, BASE, 0.05), BASE)}
    assert ": use ubatch_size=128 for generation: " in said["tg t/s"]
    assert "× faster than the defaults (95 % CI " in said["tg t/s"]
    plain = figures_table(findings.best_sweeps(stats.cell_stats(table, 0.05), stats.comparisons(table, BASE, 0.05), BASE))
    assert not plain["significant"].any()
    said = [row["statement"] for row in findings.best_sweeps(stats.cell_stats(table, 0.05),
                                                            stats.comparisons(table, BASE, 0.05), BASE)]
    assert all("batch makes no significant difference to" in s or "the defaults are the fastest batch" in s
               for s in said), said

"""The registries beside the axis registry (core/metrics.py, core/comparisons.py, core/questions.py): the record
schemas' enums are generated from them, and the pp/tg classification is theirs alone, checked on recorded
llama-bench records."""

from __future__ import annotations

import copy
import json
import re

import yaml

from conftest import ROOT
from llamabench import findings, report_html, stats
from llamabench.core import comparisons, metrics, questions, records, vocabulary
from llamabench.derive import race, tables

DATA = ROOT / "tests" / "data"
RECORDED = json.loads((DATA / "llama-bench-0c1e570-cpu-gemma3-270m-fa1.json").read_text())  # pp128, tg32


def test_the_record_vocabularies_are_generated_from_the_registries() -> None:
    """workflow/schemas/records/vocabulary.schema.yaml is what `python -m llamabench.core.vocabulary` writes."""
    generated = ROOT / "workflow/schemas/records/vocabulary.schema.yaml"
    assert yaml.safe_load(generated.read_text()) == vocabulary.schema_document()


def test_row_schemas_take_their_enums_from_the_registries() -> None:
    assert records.schema("finding_row")["properties"]["question"]["enum"] == list(questions.QUESTIONS)
    assert records.schema("comparison_row")["properties"]["comparison"]["enum"] == list(comparisons.COMPARISONS)
    assert set(records.schema("metric_row")["properties"]["metric"]["enum"]) == {
        m.name for where in (metrics.SERVE_CELL, metrics.RPC_CELL) for m in metrics.summarised_in(where)}
    row = {"question": "no_such_question", "build": "cpu", "model": "m", "label": "l", "statement": "s"}
    assert records.problems("finding_row", row)
    assert not records.problems("finding_row", {**row, "question": questions.TUNING.name})


def test_every_question_findings_asks_is_registered_and_the_report_groups_them() -> None:
    """findings.py names questions by registry constant, never by a bare string; each registered question is made
    by it, and the report's first screen lists every question with a group, in the registry's order."""
    source = (ROOT / "workflow/scripts/llamabench/findings.py").read_text()
    used = set(re.findall(r"questions\.([A-Z_]+)\b", source))
    assert {getattr(questions, name).name for name in used} == set(questions.QUESTIONS)
    assert not any(f'"{name}"' in source for name in questions.QUESTIONS)
    assert {q.group for q in questions.QUESTIONS.values()} - {None} == set(questions.GROUPS)
    assert not hasattr(report_html, "ANSWERED")


def test_no_module_spells_a_comparison_kind_by_hand() -> None:
    modules = [stats, findings, report_html, tables]
    for module in modules:
        source = (ROOT / "workflow/scripts" / (module.__name__.replace(".", "/") + ".py")).read_text()
        assert not [name for name in comparisons.COMPARISONS if f'"{name}"' in source], module.__name__


def test_a_comparison_kind_says_which_direction_is_better() -> None:
    assert comparisons.SERVED_VS_ESTIMATE.better_for(metrics.TTFT_P50) is None
    assert comparisons.SERVING_SETTING_VS_DEFAULTS.better_for(metrics.TTFT_P50) == metrics.LOWER
    assert comparisons.SERVING_SETTING_VS_DEFAULTS.better_for(metrics.AGGREGATE_TPS) == metrics.HIGHER
    assert comparisons.RPC_VS_LOCAL.better_for(metrics.TG_TS) == metrics.HIGHER
    assert comparisons.RPC_VS_LOCAL.says == comparisons.COST


def test_the_statistics_take_the_metrics_they_always_took_in_their_order() -> None:
    """metrics.csv's rows and the load sweep's level medians keep their columns and order."""
    names = {where: [m.name for m in metrics.summarised_in(where)]
             for where in (metrics.SERVE_CELL, metrics.RPC_CELL, metrics.LOAD_LEVEL)}
    assert names == {
        metrics.SERVE_CELL: ["ttft_p50_ms", "ttft_p90_ms", "itl_p50_ms", "e2e_p50_ms", "aggregate_tps"],
        metrics.RPC_CELL: ["pp_ts", "tg_ts"],
        metrics.LOAD_LEVEL: ["ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "itl_p90_ms", "e2e_p90_ms", "goodput",
                             "achieved_rate", "peak_in_flight", "alone_share", "ttft_p50_alone_ms", "wait_p90_ms",
                             "session_goodput_per_min", "concurrent_sessions"]}
    assert all(m.better in (metrics.HIGHER, metrics.LOWER, None) for m in metrics.METRICS.values())


def test_test_kinds_of_recorded_llama_bench_records() -> None:
    """A record with both n_prompt and n_gen (llama-bench -pg) is a combined test: neither pp nor tg."""
    pp, tg = RECORDED
    both = {**copy.deepcopy(tg), "n_prompt": pp["n_prompt"]}
    assert [metrics.test_of(rec) for rec in (pp, tg, both)] == ["pp128", "tg32", "pp128+tg32"]
    assert [metrics.test_kind(metrics.test_of(rec)) for rec in (pp, tg, both)] == [metrics.PP, metrics.TG,
                                                                                   metrics.BOTH]
    assert metrics.test_kind("tg_ts") is None and metrics.test_kind("ttft_p50_ms") is None
    assert metrics.speed(metrics.BOTH).label == "pp+tg t/s"


def test_a_combined_test_is_not_read_as_generation_by_the_tuner() -> None:
    """derive/race.py scored a cell by ``n_gen == 0 -> pp, else tg``: a pp+tg record after the tg one replaced the
    generation score. It scores pp and tg from their own records only."""
    pp, tg = RECORDED
    both = {**copy.deepcopy(tg), "n_prompt": pp["n_prompt"], "avg_ts": 1.0, "samples_ts": [1.0, 1.0, 1.0]}
    run = {"status": "ok", "records": [pp, tg, both], "duration_s": 3.0}
    found = race.cell_observation("bench_cell", {"llama_bench": run}, {"metric": "tg", "weights": {}}, None)
    alone = race.cell_observation("bench_cell", {"llama_bench": {**run, "records": [pp, tg]}},
                                  {"metric": "tg", "weights": {}}, None)
    assert found == alone and found["x"] == race.observation(
        {metrics.TG: (tg["avg_ts"], tg["samples_ts"])}, {"metric": "tg", "weights": {}})["x"]


def test_tuning_objectives_weigh_the_tests_they_name() -> None:
    assert metrics.OBJECTIVES["tg"].weights({"pp": 3, "tg": 5}) == {metrics.TG: 1.0}
    assert metrics.OBJECTIVES["mix"].weights({"pp": 3, "tg": 5}) == {metrics.PP: 3, metrics.TG: 5}
    assert metrics.OBJECTIVES["ttft"].weights({}) == {}
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    objective = schema["properties"]["tune"]["additionalProperties"]["properties"]["objective"]
    assert set(objective["properties"]["metric"]["enum"]) == set(metrics.OBJECTIVES)

"""The one registry of metrics: every quantity the tables, statistics, findings, tuner and report name.

Beside the axis registry (core/axes.py) and for the same reason: a metric's
unit, its label in findings and the report, which direction is the better one,
and which llama-bench test it times were spelled in five dicts, and the test
classification (pp / tg / pp+tg) in five modules, one of which took a combined
test for a generation test. Each is defined here once.

A metric's ``name`` is its column where a table has one (serving_row, rpc_row, a
load sweep's level), so nothing is renamed. ``summarised_in`` says which statistics
take it over rounds: ``serve_cell`` and ``rpc_cell`` (metrics.csv, paired
comparisons), ``load_level`` (a load level's median over its rounds). Adding a
metric is one entry here (docs/design.md).

llama-bench names a test by its sizes (``pp128``, ``tg32``, ``pp128+tg32``: both
sizes set, a combined test, which is neither a pp nor a tg test); ``test_kind``
is the only reader of those names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from dataclasses import dataclass

# Which direction of a metric is the better one (None: neither, a metric that describes).
HIGHER, LOWER = "higher", "lower"
# llama-bench's test kinds: prompt processing, generation, both in one test.
PP, TG, BOTH = "pp", "tg", "pp+tg"
SINGLE = (PP, TG)  # the kinds a speed-up is stated for
# The axis that sets each single test's size (a test whose size is 0 is not run), and the test in words.
TEST_AXIS = {PP: "n_prompt", TG: "n_gen"}
TEST_WORDS = {PP: "prompt processing", TG: "generation"}
# Which statistics take a metric over rounds.
SERVE_CELL, RPC_CELL, LOAD_LEVEL = "serve_cell", "rpc_cell", "load_level"

_TEST_NAMES = {PP: re.compile(r"pp\d+"), TG: re.compile(r"tg\d+"), BOTH: re.compile(r"pp\d+\+tg\d+")}


@dataclass(frozen=True)
class Metric:
    name: str  # its column where a table has one
    unit: str
    label: str  # how findings and the report name it: "TTFT p50 ms", "tg t/s"
    better: str | None  # HIGHER, LOWER, or None where neither is
    test: str | None = None  # the llama-bench test kind it times (PP, TG, BOTH), None for a served quantity
    summarised_in: tuple[str, ...] = ()  # SERVE_CELL, RPC_CELL, LOAD_LEVEL: statistics over rounds that take it


def _served(name: str, label: str, better: str | None, *summarised_in: str, unit: str = "ms") -> Metric:
    return Metric(name, unit, label, better, summarised_in=summarised_in)


METRICS: dict[str, Metric] = {metric.name: metric for metric in [
    Metric("pp_ts", "t/s", "pp t/s", HIGHER, PP, (RPC_CELL,)),
    Metric("tg_ts", "t/s", "tg t/s", HIGHER, TG, (RPC_CELL,)),
    Metric("pp+tg_ts", "t/s", "pp+tg t/s", HIGHER, BOTH),
    _served("ttft_p50_ms", "TTFT p50 ms", LOWER, SERVE_CELL, LOAD_LEVEL),
    _served("ttft_p90_ms", "TTFT p90 ms", LOWER, SERVE_CELL, LOAD_LEVEL),
    _served("ttft_p99_ms", "TTFT p99 ms", LOWER, LOAD_LEVEL),
    _served("itl_p50_ms", "ITL p50 ms", LOWER, SERVE_CELL),
    _served("itl_p90_ms", "ITL p90 ms", LOWER, LOAD_LEVEL),
    _served("itl_p99_ms", "ITL p99 ms", LOWER),
    _served("e2e_p50_ms", "e2e p50 ms", LOWER, SERVE_CELL),
    _served("e2e_p90_ms", "e2e p90 ms", LOWER, LOAD_LEVEL),
    _served("e2e_p99_ms", "e2e p99 ms", LOWER),
    _served("request_tps_p50", "request t/s p50", HIGHER, unit="t/s"),
    _served("aggregate_tps", "aggregate t/s", HIGHER, SERVE_CELL, unit="t/s"),
    _served("bench_ttft_estimate_ms", "llama-bench TTFT estimate ms", None),
    _served("goodput", "goodput requests/s", HIGHER, LOAD_LEVEL, unit="requests/s"),
    _served("achieved_rate", "achieved requests/s", None, LOAD_LEVEL, unit="requests/s"),
    _served("peak_in_flight", "peak requests in flight", None, LOAD_LEVEL, unit="requests"),
    _served("alone_share", "share of requests served alone", None, LOAD_LEVEL, unit="share"),
    _served("ttft_p50_alone_ms", "TTFT p50 ms of requests served alone", LOWER, LOAD_LEVEL),
    _served("capacity_rps", "requests/s", HIGHER, unit="requests/s"),
    # conversations (derive/sessions.py): a lone request is a conversation of one turn
    _served("wait_p90_ms", "wait for a slot p90 ms", LOWER, LOAD_LEVEL),
    _served("session_goodput_per_min", "conversations/min meeting the objectives", HIGHER, LOAD_LEVEL,
            unit="sessions/min"),
    _served("concurrent_sessions", "conversations in flight (mean)", None, LOAD_LEVEL, unit="sessions"),
    _served("turn_ttft_ms", "turn TTFT ms", LOWER),
]}

PP_TS, TG_TS = METRICS["pp_ts"], METRICS["tg_ts"]
TTFT_P50, TTFT_P90 = METRICS["ttft_p50_ms"], METRICS["ttft_p90_ms"]
AGGREGATE_TPS, TTFT_ESTIMATE = METRICS["aggregate_tps"], METRICS["bench_ttft_estimate_ms"]
CAPACITY, TURN_TTFT = METRICS["capacity_rps"], METRICS["turn_ttft_ms"]


def summarised_in(where: str) -> tuple[Metric, ...]:
    """The metrics that the statistics ``where`` (SERVE_CELL, RPC_CELL, LOAD_LEVEL) take, in registry order."""
    return tuple(metric for metric in METRICS.values() if where in metric.summarised_in)


def test_of(record: Mapping[str, Any]) -> str:
    """The test name of one of llama-bench's JSON records."""
    return test_name(int(record.get("n_prompt", 0)), int(record.get("n_gen", 0)))


def test_name(n_prompt: int, n_gen: int) -> str:
    """llama-bench's naming: pp512, tg128, or pp512+tg128 for a combined test."""
    if n_prompt and n_gen:
        return f"pp{n_prompt}+tg{n_gen}"
    return f"pp{n_prompt}" if n_prompt else f"tg{n_gen}"


def test_kind(test: str) -> str | None:
    """PP, TG or BOTH: what a llama-bench test times; None for a name that is no llama-bench test (a serving
    or RPC metric in a comparison's ``test`` column: ttft_p50_ms, tg_ts)."""
    return next((kind for kind, pattern in _TEST_NAMES.items() if pattern.fullmatch(str(test))), None)


def speed(kind: str) -> Metric:
    """The speed metric of a kind of llama-bench test (PP -> pp t/s)."""
    return METRICS[f"{kind}_ts"]


@dataclass(frozen=True)
class Objective:
    """What a tuning study optimises (config ``tune.<name>.objective.metric``)."""

    name: str
    unit: str  # of a candidate's score, the geometric mean of the objective over its rounds
    words: str  # in the study's sentence: "generation", "served time to first token"
    label: str  # in its finding's metric column
    tests: tuple[str, ...] = ()  # the llama-bench tests it weighs (mix: by objective.weights); none: served

    def weights(self, given: Mapping[str, float]) -> dict[str, float]:
        """Each llama-bench test's weight in a score: the study's ``weights`` where it weighs several tests, else 1
        (a served objective weighs none)."""
        return {test: given.get(test, 0) if len(self.tests) > 1 else 1.0 for test in self.tests}


OBJECTIVES: dict[str, Objective] = {objective.name: objective for objective in [
    Objective(TG, "t/s", TEST_WORDS[TG], TG_TS.label, (TG,)),
    Objective(PP, "t/s", TEST_WORDS[PP], PP_TS.label, (PP,)),
    Objective("mix", "t/s", "the weighted pp/tg mix", "pp/tg mix", SINGLE),
    Objective("ttft", "ms", "served time to first token", "served TTFT"),
    Objective("throughput", "t/s", "served throughput", "served t/s under a TTFT limit"),
]}

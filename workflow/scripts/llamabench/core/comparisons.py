"""The one registry of comparison kinds: every pairing of two cells' rounds that comparisons.csv holds.

A kind's ``name`` is the value of comparison_row's ``comparison`` column (its
enum is generated from here: core/vocabulary.py), so the statistics that make a
row and the findings and report that read it name it alike. ``better`` is the
direction a candidate improves in; a kind ``by_metric`` takes it from the metric
it compares (core/metrics.py). ``says`` is what its verdict means: an improvement
or regression; higher or lower where neither side is the better one (a measured
TTFT against llama-bench's estimate); a cost, where the findings state what
spreading a model over machines costs rather than call it regressed.
"""

from __future__ import annotations

from dataclasses import dataclass

from llamabench.core.metrics import HIGHER, Metric

IMPROVEMENT = "improved or regressed"
DIRECTION = "higher or lower: neither side is the better one"
COST = "a cost: the findings state what it costs, the row keeps the test's word"


@dataclass(frozen=True)
class Comparison:
    name: str  # comparison_row's comparison column
    compares: str  # baseline -> candidate, in words
    better: str | None = HIGHER  # the candidate's better direction (None: neither)
    by_metric: bool = False  # the better direction is the compared metric's
    says: str = IMPROVEMENT

    def better_for(self, metric: Metric | None = None) -> str | None:
        """The better direction of a row of this kind comparing ``metric``."""
        return metric.better if self.by_metric and metric is not None else self.better


SETTING_VS_DEFAULTS = Comparison("setting vs defaults",
                                 "a benchmark setting against the defaults cell of its build, at the same workload")
BUILD_VS_BUILD = Comparison("build vs build", "one cell on two builds of a named comparison (comparisons: in the "
                                              "config); its name column names the comparison")
SERVING_SETTING_VS_DEFAULTS = Comparison("serving setting vs defaults",
                                         "a serving setting against the serving defaults cell at the same workload, "
                                         "metric by metric", by_metric=True)
SERVED_VS_ESTIMATE = Comparison("served vs estimate",
                                "a serving cell's measured TTFT p50 against its llama-bench partner's estimate",
                                better=None, says=DIRECTION)
RPC_VS_LOCAL = Comparison("rpc vs local", "an RPC cell's pp and tg t/s against its -dev none partner", says=COST)
LOAD_CAPACITY = Comparison("load capacity",
                           "a load sweep's capacity (requests/s) on a build against its first build's, by round; "
                           "its baseline_cell and candidate_cell name the sweep")

COMPARISONS: dict[str, Comparison] = {kind.name: kind for kind in [
    SETTING_VS_DEFAULTS, BUILD_VS_BUILD, SERVING_SETTING_VS_DEFAULTS, SERVED_VS_ESTIMATE, RPC_VS_LOCAL, LOAD_CAPACITY]}

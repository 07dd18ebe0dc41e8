"""The one registry of finding questions: what each row of results/findings.csv answers.

A question's ``name`` is finding_row's ``question`` value (its enum is generated
from here: core/vocabulary.py); findings.py makes its rows, one function per
question or two, and the report opens with the answers of every question that
has a ``group``, groups in the order of GROUPS, questions in registry order within
a group. A question without one (served_vs_estimate) is told in its section and in
the table of every finding. Adding a finding is one entry here and one function in
findings.py (docs/design.md).
"""

from __future__ import annotations

from dataclasses import dataclass

# The report's first-screen groups, in the order it shows them.
SETTINGS, WORKLOAD, COST, VERSIONS, MEMORY = (
    "What to run", "How this machine behaves under the work", "What RPC, offload or quality cost",
    "What changed between versions", "Memory")
GROUPS = (SETTINGS, WORKLOAD, COST, VERSIONS, MEMORY)


@dataclass(frozen=True)
class Question:
    name: str  # finding_row's question
    group: str | None  # the report's first-screen group (GROUPS), None: told in its section only
    description: str  # what a row answers, and what its fields hold where they differ from the usual


TUNING = Question("tuning", SETTINGS, "a tuning study's winner: ratio its speed-up over the defaults, verdict why "
                                      "the study ended")
BEST_SETTING = Question("best_setting", SETTINGS, "the setting significantly faster than the defaults, per metric")
BEST_SWEEP = Question("best_sweep", SETTINGS, "the best value of a swept axis")
LOWEST_TTFT = Question("lowest_ttft", SETTINGS, "the setting with the lowest measured TTFT p50 at one workload")
THROUGHPUT_UNDER_TTFT_LIMIT = Question("throughput_under_ttft_limit", SETTINGS,
                                       "the most aggregate throughput whose TTFT p90 stays under the limit, at one "
                                       "workload")
SERVING_VS_DEFAULTS = Question("serving_vs_defaults", SETTINGS,
                               "a serving setting against the serving defaults cell at the same workload")
TTFT_PER_PROMPT_TOKEN = Question("ttft_per_prompt_token", WORKLOAD,
                                 "how TTFT p50 grows per prompt token over cells that differ in prompt length alone: "
                                 "value the slope in ms per token with its 95 % interval; described, never a verdict")
CONCURRENCY_EFFECT = Question("concurrency_effect", WORKLOAD,
                              "aggregate t/s and TTFT p50 at each concurrency of cells that differ in it alone: value "
                              "the throughput at the highest, reference_value at the lowest; described, never a "
                              "verdict")
SESSION_SETTING = Question("session_setting", SETTINGS,
                          "what a setting (the prompt cache, cache reuse, a full-size SWA cache, the slots, ...) does "
                          "to a conversation turn's TTFT against its baseline, paired by round: value the candidate's "
                          "TTFT at the stated turn, reference_value the baseline's, ratio with its 95 % interval")
LOAD_CAPACITY = Question("load_capacity", WORKLOAD, "a load sweep's largest load meeting its objectives: value in "
                                                    "requests/s with its interval across rounds")
LOAD_CAPACITY_VS_BUILD = Question("load_capacity_vs_build", WORKLOAD,
                                  "that capacity on a build against the sweep's first build, paired by round")
RPC_VS_LOCAL = Question("rpc_vs_local", COST, "generation through RPC's fastest device selection against the client "
                                              "alone (-dev none)")
QUALITY_COST = Question("quality_cost", COST,
                        "what a setting that changes the numerics costs in output quality: value the mean KL "
                        "divergence from the reference's distributions with its 95 % interval over chunks, "
                        "reference_value the share of tokens whose top token is unchanged, ratio its tg speed over "
                        "the defaults with its paired test")
LARGEST_CHANGE = Question("largest_change", VERSIONS, "a named version comparison's largest significant change")
BISECT_CULPRIT = Question("bisect_culprit", VERSIONS,
                          "a bisect study's first bad commit: answer the commit and its subject, ratio bad/good over "
                          "the endpoints' paired rounds, verdict the study's outcome")
HISTORY_CHANGE = Question("history_change", VERSIONS,
                          "a history study's change point: answer the commit after it, ratio after/before with its "
                          "paired test, significant whether it is confirmed; one row saying so when none is")
MEMORY_PREDICTION = Question("memory_prediction", MEMORY, "a memory predictor's accuracy over the run's cells: value "
                                                          "its median error, reference_value its worst")
SERVED_VS_ESTIMATE = Question("served_vs_estimate", None, "a measured TTFT against llama-bench's estimate")

QUESTIONS: dict[str, Question] = {question.name: question for question in [
    TUNING, BEST_SETTING, BEST_SWEEP, LOWEST_TTFT, THROUGHPUT_UNDER_TTFT_LIMIT, SERVING_VS_DEFAULTS,
    SESSION_SETTING, TTFT_PER_PROMPT_TOKEN, CONCURRENCY_EFFECT, LOAD_CAPACITY, LOAD_CAPACITY_VS_BUILD, RPC_VS_LOCAL,
    QUALITY_COST, LARGEST_CHANGE,
    BISECT_CULPRIT, HISTORY_CHANGE, MEMORY_PREDICTION, SERVED_VS_ESTIMATE]}

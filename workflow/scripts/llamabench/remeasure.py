"""Checkpoint ``remeasure``: after the planned rounds, which cells to measure again, and why.

Two reasons, one decision, the same extra rounds:

- **disturbed**: something else used the machine while a round measured (its
  record's ``interference``: other processes' CPU time or the VM's steal above
  ``benchmark.disturbance.max_share`` of all cores). With ``action: remeasure``
  the cell gets one more round, and the round is left out of the statistics.
- **noisy**: with ``remeasure.enabled``, a cell whose round means vary more than
  ``noisy_cv`` (a benchmark test's t/s, a serving cell's TTFT p50, an RPC cell's
  pp and tg) gets rounds up to ``remeasure.max_rounds``.

The cells each is compared with (its defaults cell, its partner) are measured in
the same extra rounds, so the rounds still pair; the plan adds them
(``Plan.extra_rounds``). The record holds the decision only; which files that
means is the plan's, so the checkpoint never spells a cell's path.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from llamabench.core import records
from llamabench.core.metrics import TTFT_P50, test_of
from llamabench.core.records import RecordError
from llamabench.core.status import Status
from llamabench.derive import latency, samples, statistics

RUNS = {"bench_cell": "llama_bench", "serve_cell": "serving", "rpc_cell": "rpc"}


def remeasure(smk: Any) -> None:
    """Checkpoint ``remeasure``: results/remeasure.json, the cells whose extra rounds the summaries then ask for."""
    p = smk.params
    cells = [(kind, Path(path)) for kind in RUNS for path in smk.input[kind]]
    decisions = decide(cells, p.rounds, p.noisy_cv if p.enabled else None, p.max_rounds,
                       p.max_share if p.action == "remeasure" else None)
    records.write(smk.output[0], "remeasure", {"noisy_cv": p.noisy_cv, "max_rounds": p.max_rounds,
                                               "max_share": p.max_share, "action": p.action,
                                               "decisions": decisions})


def decide(cells: list[tuple[str, Path]], rounds: int, noisy_cv: float | None, max_rounds: int,
           max_share: float | None) -> list[dict[str, Any]]:
    """The cells to measure again: each (kind, build, model, base cell) once, with its reason and last round."""
    chosen: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    values: dict[tuple[str, str, str, str, str], list[float]] = defaultdict(list)
    for kind, path in cells:
        try:
            cell = records.read(path, kind)
        except RecordError:
            continue  # the summary reports it
        run = cell[RUNS[kind]]
        key = (kind, cell["build"]["name"], cell["model"]["name"], cell.get("base_cell") or cell["cell"])
        if max_share is not None and run["status"] == Status.OK and \
                (why := samples.disturbed(measured_run(kind, run), max_share)):
            chosen.setdefault(key, {"reason": "disturbed", "why": why, "last_round": rounds + 1})
        for metric, value in metrics(kind, run):
            values[(*key, metric)].append(value)
    if noisy_cv is not None:
        for (*key, metric), found in sorted(values.items()):
            if (spread := statistics.cv(found)) and spread > noisy_cv:
                chosen[tuple(key)] = {"reason": "noisy", "why": f"{metric} varied by {spread:.1%} over the rounds",
                                      "last_round": max_rounds}
    return [{"kind": k, "build": b, "model": m, "cell": c, **decision}
            for (k, b, m, c), decision in sorted(chosen.items())]


def measured_run(kind: str, run: dict[str, Any]) -> dict[str, Any] | None:
    """A cell's measured run (an RPC cell's is its llama-bench run)."""
    return run.get("llama_bench") if kind == "rpc_cell" else run


def metrics(kind: str, run: dict[str, Any]) -> list[tuple[str, float]]:
    """The numbers of one round whose spread over rounds makes a cell noisy."""
    if run["status"] != Status.OK:
        return []
    if kind == "serve_cell":
        ttft = TTFT_P50.name
        return [(ttft, latency.request_metrics(run["requests"], run["wall_s"], {"p90": 1, "p99": 1})[ttft])]
    bench = run["llama_bench"] if kind == "rpc_cell" else run
    return [(test_of(rec), float(rec["avg_ts"])) for rec in bench["records"]]

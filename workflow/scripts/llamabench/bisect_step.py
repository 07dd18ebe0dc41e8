"""Rule ``bisect_step`` (a checkpoint): a bisect study's state after each measurement (derive/bisect.py decides).

Step 0 resolves the range from the source's history (prepare/commits.py) - the
good and bad refs, or the largest confirmed slowdown of a history study - and
the cells: the study's own, or the llama-bench cells a named comparison found
regressed (with that comparison's metric). Every later step reads the state
before it, which probe builds failed, and the rounds measured.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from llamabench.core import bisect, metrics, plan, records
from llamabench.core.status import Status
from llamabench.derive import bisect as steps
from llamabench.derive import samples, tables
from llamabench.derive.statistics import REGRESSED
from llamabench.prepare import commits

log = logging.getLogger(__name__)


def bisect_step(smk: Any) -> None:
    the_plan = plan.of(smk.config)
    found = the_plan.bisects[smk.wildcards.study]
    step = int(smk.wildcards.step)
    if step == 0:
        state = first(found, smk.input)
    else:
        previous = records.read(smk.input.previous, "bisect_step")["state"]
        built = {r["commit"]: r["status"] for r in (records.read(p, "probe_build") for p in smk.input.builds)}
        failed = [p for p in bisect.measured(previous) if built[previous["commits"][p]["commit"]] != Status.OK]
        obs = steps.observations(records.readable(records.read_each(smk.input.cells, "bench_cell")), previous["metric"],
                                 samples.disturbance_limit(smk.params.max_share, smk.params.action))
        state = steps.advance(found, previous, obs, failed)
    if state["ended"]:
        log.info("bisect %s ended: %s", found.name, state["sentence"])
        print(f"llamabench: bisect {found.name}: {state['sentence']}")
    records.write(smk.output[0], "bisect_step", {"study": found.name, "step": step,
                                                 "settings": dict(smk.params.settings), "state": state})


def first(found: bisect.Study, inputs: Any) -> dict[str, Any]:
    """Step 0's state: the commits, the cells and metric, or why there is nothing to bisect."""
    cells, metric, why_not = list(found.cells), found.metric, None
    if "comparisons" in inputs.keys():
        cells, metric = regressed(inputs.comparisons, found.settings["comparison"])
        if not cells:
            why_not = (f"no regression found: comparison {found.settings['comparison']} has no regressed "
                       "llama-bench cell")
    good, bad = found.settings.get("good"), found.settings.get("bad")
    if "history" in inputs.keys():
        change = largest_slowdown(records.read(inputs.history, "history_study"))
        if change is None:
            why_not = f"no regression found: history study {found.settings['history']} confirmed no slowdown"
        else:
            good, bad = change["before"], change["after"]
    if why_not:
        return steps.start(found, [], cells, metric, why_not)
    return steps.start(found, commits.between(found.url, good, bad), cells, metric)


def regressed(path: str, name: str) -> tuple[list[str], str]:
    """The llama-bench cells a named comparison found regressed in a pp or tg test (a combined test is neither),
    and their metric (the one most of them share)."""
    rows = tables.named_comparison(records.read_table(path, "comparison_row"), name)
    rows = rows[rows["verdict"] == REGRESSED]
    tests = [(cell, kind) for cell, test in zip(rows["baseline_cell"], rows["test"])
             if (kind := metrics.test_kind(test)) in metrics.SINGLE]
    if not tests:
        return [], metrics.TG
    metric = Counter(test for _, test in tests).most_common(1)[0][0]
    return sorted({cell for cell, test in tests if test == metric}), metric


def largest_slowdown(history: dict[str, Any]) -> dict[str, Any] | None:
    """The confirmed slowdown of a history study with the smallest ratio (after / before), or None."""
    slower = [c for c in history["changes"] if c["confirmed"] and c["direction"] == "slower"]
    return min(slower, key=lambda c: c["ratio"]) if slower else None

"""Rule ``bisect_study``: a finished bisect - its path of probes with their verdicts, the culprit, the builds it
took (cache hits counted), the time spent measuring - and a figure of the path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llamabench.core import records
from llamabench.core.status import Status
from llamabench.derive import bisect as steps
from llamabench import plots


def bisect_study(smk: Any) -> None:
    state = records.read(smk.input.steps[-1], "bisect_step")["state"]
    commits = state["commits"]
    position = {c["commit"]: i for i, c in enumerate(commits)}
    builds = []
    for path in smk.input.builds:
        probe = records.read(path, "probe_build")
        builds.append({"commit": probe["commit"], "position": position[probe["commit"]], "status": probe["status"],
                       "cache_hit": bool(probe["built"] and probe["built"]["cache_hit"]), "name": probe["name"]})
    builds.sort(key=lambda b: b["position"])
    # each measured cell once: the plan lists each once (core/chains.py, though a step that gave a probe another
    # round asked for its earlier rounds again); a guard, so that no input counts or times a cell twice
    cells = list(dict.fromkeys(smk.input.cells))
    probes = [{**p, "subject": commits[p["target"]]["subject"] if p["target"] is not None else None}
              for p in state["probes"]]
    record = {"study": smk.wildcards.study, "settings": dict(smk.params.settings),
              "build": smk.params.build, "models": list(smk.params.models), "metric": state["metric"],
              "outcome": state["outcome"], "sentence": state["sentence"],
              "culprit": {**state["culprit"], "position": state["hi"]} if state["culprit"] else None,
              "candidates": [{**commits[p], "position": p} for p in state["candidates"]],
              "commits": commits, "probes": probes, "builds": builds, "steps": len(smk.input.steps),
              "measuring_s": steps.study_seconds(records.readable(records.read_each(cells, "bench_cell"))),
              "cells": len(cells)}
    records.write(smk.output.record, "bisect_study", record)
    figure(record, Path(smk.output.png), Path(smk.output.svg))


def figure(record: dict[str, Any], png: Path, svg: Path) -> None:
    """Each probe's speed relative to the good endpoint (paired by round, 95 % CI) at its place in the range, the
    bad endpoint's ratio as a line, failed builds and the culprit marked."""
    fig, ax = plots.plt.subplots(figsize=(9, 4))
    measured = [p for p in record["probes"] if p.get("vs_good", {}).get("ratio")]
    endpoints = next((p["endpoints"] for p in record["probes"] if p.get("endpoints", {}).get("ratio")), None)
    ax.axhline(1.0, color="green", alpha=0.6, label="good endpoint")
    if endpoints:
        ax.axhline(endpoints["ratio"], color="red", alpha=0.6, label="bad endpoint (probe 0)")
    for p in measured:
        test = p["vs_good"]
        low, high = test.get("ratio_ci_low") or test["ratio"], test.get("ratio_ci_high") or test["ratio"]
        ax.errorbar([p["target"]], [test["ratio"]], yerr=[[test["ratio"] - low], [high - test["ratio"]]], fmt="o",
                    capsize=3, color="black")
        ax.annotate(f"{p['probe']}: {p['verdict']}", (p["target"], test["ratio"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=7)
    for p in record["probes"]:
        if p["verdict"] == Status.BUILD_FAILED:
            ax.axvline(p["target"], color="grey", linestyle=":", label="did not build")
    if record["culprit"]:
        ax.axvline(record["culprit"]["position"], color="red", linestyle="--",
                   label=f"culprit {record['culprit']['commit'][:9]}")
    ax.set_xlim(-0.5, len(record["commits"]) - 0.5)
    ax.set_xlabel("commit (0 = good, last = bad)")
    ax.set_ylabel(f"{record['metric']} tokens/s relative to good")
    ax.set_title(f"bisect {record['study']}: {record['outcome']}")
    plots.finish(ax, False, "")
    plots.save(fig, png, svg)

"""Rule ``history_study``: a history study's series, its change points (derive/changes.py) and a figure."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from llamabench.core import records
from llamabench.core.status import Status
from llamabench.derive import bisect as steps
from llamabench import plots
from llamabench.derive import changes, samples, statistics


def history_study(smk: Any) -> None:
    settings = dict(smk.params.settings)
    commits = records.read(smk.input.range, "history_range")["commits"]
    built = {r["commit"]: r["status"] for r in (records.read(p, "probe_build") for p in smk.input.builds)}
    cells = records.readable(records.read_each(smk.input.cells, "bench_cell"))
    obs = steps.observations(cells, settings["metric"], samples.disturbance_limit(smk.params.max_share,
                                                                                  smk.params.action))
    kept, used, matrix = changes.table(obs, [c["commit"] for c in commits], settings["rounds"])
    found = (changes.detect(matrix, settings["alpha"], settings["min_change"]) if len(kept)
             else {"variance": None, "changes": []})
    by_sha = {c["commit"]: c for c in commits}
    changed = [{**change, "before": kept[change["at"] - 1], "after": kept[change["at"]],
                "before_position": by_sha[kept[change["at"] - 1]]["position"],
                "after_position": by_sha[kept[change["at"]]]["position"]} for change in found["changes"]]
    series = [point(c, built.get(c["commit"]), obs.get(c["commit"], {}), c["commit"] in kept) for c in commits]
    record = {"study": smk.wildcards.study, "settings": settings, "rounds_used": used, "build": smk.params.build,
              "models": list(smk.params.models), "metric": settings["metric"], "series": series,
              "variance": found["variance"], "changes": changed,
              "sentence": sentence(settings["metric"], series, changed, by_sha),
              "measuring_s": steps.study_seconds(cells)}
    records.write(smk.output.record, "history_study", record)
    figure(record, Path(smk.output.png), Path(smk.output.svg))


def point(commit: dict[str, Any], status: str | None, rounds: dict[int, float], kept: bool) -> dict[str, Any]:
    """One commit of the series: geometric mean tokens/s over its rounds and the 95 % interval."""
    logs = [rounds[r] for r in sorted(rounds)]
    low, high = statistics.interval(logs)
    return {"commit": commit["commit"], "subject": commit["subject"], "position": commit["position"],
            "status": status if status != Status.OK else (Status.OK if kept else Status.FAILED).value,
            "tps": math.exp(float(np.mean(logs))) if logs else None,
            "tps_ci_low": math.exp(low) if low is not None else None,
            "tps_ci_high": math.exp(high) if high is not None else None, "rounds": len(logs)}


def sentence(metric: str, series: list[dict[str, Any]], found: list[dict[str, Any]], by_sha: dict[str, Any]) -> str:
    measured = [p for p in series if p["status"] == Status.OK]
    skipped = len(series) - len(measured)
    head = f"{len(measured)} commits measured" + (
        f" ({skipped} not: build failed, or a round failed)" if skipped else "")
    confirmed = [c for c in found if c["confirmed"]]
    if not confirmed:
        return f"{head}: no confirmed change in {metric} tokens/s" + (
            f" ({len(found)} candidate change(s) not significant)" if found else "")
    parts = [f"{c['direction']} from {c['before'][:9]} to {c['after'][:9]} \"{by_sha[c['after']]['subject']}\": "
             f"{metric} x{c['ratio']:.3f} (95 % CI {c['ratio_ci_low']:.3f}-{c['ratio_ci_high']:.3f}, "
             f"adjusted p = {c['p_adjusted']:.2g})" for c in confirmed]
    return f"{head}: {len(confirmed)} confirmed change(s): " + "; ".join(parts)


def figure(record: dict[str, Any], png: Path, svg: Path) -> None:
    """Tokens/s by commit with intervals; confirmed changes solid, unconfirmed dashed; failed builds marked."""
    fig, ax = plots.plt.subplots(figsize=(9, 4))
    ok = [p for p in record["series"] if p["tps"] is not None]
    xs = [p["position"] for p in ok]
    ax.errorbar(xs, [p["tps"] for p in ok],
                yerr=[[p["tps"] - (p["tps_ci_low"] or p["tps"]) for p in ok],
                      [(p["tps_ci_high"] or p["tps"]) - p["tps"] for p in ok]], fmt="o-", capsize=3,
                label="tokens/s, 95 % CI over rounds")
    for p in record["series"]:
        if p["status"] == Status.BUILD_FAILED:
            ax.axvline(p["position"], color="grey", alpha=0.3)
    for c in record["changes"]:
        ax.axvline((c["before_position"] + c["after_position"]) / 2, color="red" if c["confirmed"] else "grey",
                   linestyle="-" if c["confirmed"] else "--")
    ax.set_xlabel("commit (position on the first-parent line)")
    ax.set_ylabel(f"{record['metric']} tokens/s")
    ax.set_title(f"history {record['study']}: {len(record['changes'])} change point(s), "
                 f"{sum(c['confirmed'] for c in record['changes'])} confirmed")
    plots.finish(ax, not ok, "no commit measured")
    plots.save(fig, png, svg)

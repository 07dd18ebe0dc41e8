"""Rule ``load_sweep``: a load sweep's answer, results/load/<sweep>.json, its per-token export and its figure.

Per build and model: every level's latency percentiles, goodput and saturation
test in every round; the capacity of each round (the largest rate meeting the
objectives, derive/load.py) and its mean with the 95 % interval across rounds;
how the load generator and the server shared the cores. Rounds that something
else disturbed are left out of the capacity unless ``benchmark.disturbance.action``
is ``flag``. The comparison of builds (paired by round, corrected with every
other comparison of the run) is the stats rule's; the sentence is here.
``tokens.jsonl``: one line per token of every measured request, the client's
and the server's clock, so any latency metric can be recomputed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from llamabench.core import files, layout, metrics, plan, records
from llamabench.core.sessions import conversational
from llamabench.core.status import Status
from llamabench import plots
from llamabench.derive import latency, load, samples


def load_sweep(smk: Any) -> None:
    """Rule ``load_sweep``: the record, the token export and the figure of one sweep."""
    the_plan = plan.of(smk.config)
    sweep = the_plan.sweeps[smk.wildcards.sweep]
    cells: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path in smk.input.cells:
        key = layout.parse("load_cell", path)
        cells[(key["build"], key["model"])].append(Path(path))
    max_share = samples.disturbance_limit(smk.params.max_share, smk.params.action)
    results, tokens, rates = [], [], set()
    for (build, model), paths in sorted(cells.items()):
        read = [records.read(path, "serve_cell") for path in sorted(paths)]
        results.append(result(sweep.settings, build, model, read, max_share, conversational(sweep.params)))
        rates |= {cell["params"]["rate"] for cell in read}
        tokens += [line for cell in read for line in latency.token_lines(cell)]
    record = {"sweep": sweep.name, "builds": list(sweep.builds), "params": dict(sweep.params),
              "objectives": sweep.settings["objectives"], "requests": sweep.settings["requests"],
              "rates": sorted(rates),
              "pilots": [pilot_summary(records.read(path, "load_pilot")) for path in smk.input.pilots],
              "results": results}
    records.write(smk.output.record, "load_sweep", record)
    files.write_lines(Path(smk.output.tokens), latency.jsonl(tokens))
    figure(record, Path(smk.output.png), Path(smk.output.svg))
    turns_figure(record, Path(smk.output.turns_png), Path(smk.output.turns_svg))


def result(settings: Mapping[str, Any], build: str, model: str, cells: list[dict[str, Any]],
           max_share: float | None, sessions: bool = False) -> dict[str, Any]:
    """One build and model: each level by round, each round's capacity, the capacity across rounds (``sessions``:
    its levels offer conversations, and the answer says how many it holds at once)."""
    by_round: dict[int, dict[float, dict[str, Any]]] = defaultdict(dict)
    levels: dict[float, list[dict[str, Any]]] = defaultdict(list)
    disturbed_rounds, cpu = set(), []
    # each round tests every level for saturation: Bonferroni over them, so one false alarm below the knee is as
    # unlikely as alpha in the whole round
    alpha = settings["alpha"] / max(1, len({cell["params"]["rate"] for cell in cells}))
    for cell in cells:
        run, rate = cell["serving"], cell["params"]["rate"]
        found: dict[str, Any] = {"round": cell.get("round", 1), "cell": cell["cell"], "status": run["status"],
                                 "error": run["error"]}
        if run["status"] == Status.OK:
            found.update(load.level_metrics(run["requests"], settings["objectives"], alpha))
            if sessions:
                found["turn_ttft_p90_ms"] = {str(turn): float(np.percentile([r["ttft_ms"] for r in run["requests"]
                                                                             if r["turn"] == turn], 90))
                                             for turn in sorted({r["turn"] for r in run["requests"]})}
            why = samples.disturbed(run, max_share) if max_share is not None else None
            if why:
                found["disturbed"] = why
                disturbed_rounds.add(found["round"])
            if run.get("cpu"):
                cpu.append(run["cpu"])
        else:  # a level that could not be served does not meet the objectives
            found.update(meets=False, missed=[f"{run['status']}: {run['error']}"])
        levels[rate].append(found)
        by_round[found["round"]][rate] = found
    rounds = {r: load.capacity(load.calls(found)) for r, found in sorted(by_round.items())}
    used = [r for r in rounds if r not in disturbed_rounds]
    across = load.across_rounds([rounds[r]["capacity"] for r in used])
    answer = {"build": build, "model": model, "levels": [level_summary(rate, found) for rate, found in
                                                         sorted(levels.items())],
              "rounds": [{"round": r, **found, "disturbed": r in disturbed_rounds} for r, found in rounds.items()],
              "rounds_used": used, **across, "hostname": ", ".join(sorted({c["host"]["hostname"] for c in cells})),
              "bounded": all(rounds[r]["bounded"] for r in used) if used else False,
              "cpu": cpu_share(cpu)}
    if sessions:
        answer["sessions"] = held(answer)
    return {**answer, "sentence": sentence(settings, answer)}


def held(found: Mapping[str, Any]) -> dict[str, Any]:
    """A conversation sweep's answer in conversations: at the highest level within the capacity, how many were in
    flight on average and how many per minute met every objective in every turn (medians over rounds)."""
    within = [lv for lv in found["levels"] if found["capacity_mean"] and lv["rate"] <= found["capacity_mean"] * 1.001]
    if not within:  # the capacity lies below every level (a round's was 0): nothing measured there
        return {"rate": None, "concurrent": None, "goodput_per_min": None}
    level = within[-1]
    return {"rate": level["rate"], "concurrent": level.get("concurrent_sessions"),
            "goodput_per_min": level.get("session_goodput_per_min")}


def level_summary(rate: float, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A level over its rounds: the median of each of its metrics (core/metrics.py), how many rounds met the
    objectives."""
    ok = [r for r in rounds if r["status"] == Status.OK]
    present = {m.name: [r[m.name] for r in ok if r.get(m.name) is not None]
               for m in metrics.summarised_in(metrics.LOAD_LEVEL)}
    medians = {name: float(np.median(values)) if values else None for name, values in present.items()}
    turns = sorted({turn for r in ok for turn in r.get("turn_ttft_p90_ms", {})}, key=int)
    if turns:  # a conversation sweep's: each turn index's TTFT p90, median over rounds
        medians["turn_ttft_p90_ms"] = {turn: float(np.median([r["turn_ttft_p90_ms"][turn] for r in ok
                                                              if turn in r.get("turn_ttft_p90_ms", {})]))
                                       for turn in turns}
    return {"rate": rate, **medians, "rounds_meeting": sum(bool(r["meets"]) for r in rounds),
            "rounds_saturated": sum(bool(r.get("saturated")) for r in ok),
            "rounds": sorted(rounds, key=lambda r: r["round"])}


def cpu_share(cpu: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """How the load generator and the server shared the cores over the measured levels: mean cores each used."""
    if not cpu:
        return None
    wall = sum(c["wall_s"] for c in cpu)
    return {"client_cores": sum(c["client_s"] for c in cpu) / wall,
            "server_cores": sum(c["server_s"] for c in cpu) / wall,
            "logical_cpus": cpu[0]["logical_cpus"]}


def objectives_text(objectives: Mapping[str, Mapping[str, float]]) -> str:
    names = {"ttft_ms": "TTFT", "itl_ms": "inter-token latency", "e2e_ms": "end-to-end latency"}
    return ", ".join(f"{names[m]} {q} ≤ {limit:g} ms" for m, by_q in objectives.items() for q, limit in by_q.items())


def sentence(settings: Mapping[str, Any], found: Mapping[str, Any]) -> str:
    """The answer in one sentence: the largest load meeting the objectives, with its interval; for conversations,
    how many the machine holds at once (found["sessions"]), the offered rate per minute."""
    where = f"{found['build']} / {found['model']}"
    goal = objectives_text(settings["objectives"])
    if found["capacity_mean"] is None:
        return f"{where}: no round measured every level, so no capacity ({goal})."
    if found["capacity_mean"] == 0:
        return f"{where}: even the lowest rate misses the objectives ({goal})."
    held_ = found.get("sessions")
    scale, unit = (60, "conversations/min") if held_ is not None else (1, "requests/s")
    interval = (f" (95 % CI {found['capacity_ci_low'] * scale:.2f}-{found['capacity_ci_high'] * scale:.2f}, "
                f"{len(found['rounds_used'])} rounds)" if found["capacity_ci_low"] is not None else
                f" ({len(found['rounds_used'])} round: no interval)")
    floor = "" if found["bounded"] else " at least (every level met them)"
    cpu = found["cpu"]
    share = (f"; the load generator used {cpu['client_cores']:.2f} and the server {cpu['server_cores']:.2f} of "
             f"{cpu['logical_cpus']} cores" if cpu else "")
    rate = f"{found['capacity_mean'] * scale:.2f} {unit}{interval}"
    if held_ and held_["concurrent"] is not None:
        return (f"{where}: this machine holds{floor} {held_['concurrent']:.1f} concurrent conversations within {goal} "
                f"in every turn: {rate} offered, {held_['goodput_per_min']:.2f}/min meeting every objective{share}.")
    return f"{where}: the largest load meeting {goal} is{floor} {rate}{share}."


def pilot_summary(pilot: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("status", "error", "single_request_s", "start_rate", "ended", "chosen", "capacity", "bounded")
    return {"build": pilot["build"]["name"], "model": pilot["model"]["name"], **{k: pilot.get(k) for k in keep},
            "levels": [{k: level.get(k) for k in ("rate", "ttft_p90_ms", "goodput", "saturated", "ttft_p",
                                                    "in_flight_p", "confirmed", "false_alarm", "meets")}
                       for level in pilot.get("levels", [])]}


def figure(record: Mapping[str, Any], png: Path, svg: Path) -> None:
    """Latency percentiles against the offered load, and goodput against it with each capacity marked."""
    fig, (lat, good) = plots.plt.subplots(1, 2, figsize=(11, 4))
    for found in record["results"]:
        label = f"{found['build']}/{found['model']}"
        rates = [lv["rate"] for lv in found["levels"] if lv["ttft_p50_ms"] is not None]
        shown = [lv for lv in found["levels"] if lv["ttft_p50_ms"] is not None]
        for metric, style in (("ttft_p50_ms", "-o"), ("ttft_p90_ms", "--o"), ("itl_p90_ms", ":s")):
            lat.plot(rates, [lv[metric] for lv in shown], style, markersize=3, label=f"{label} {metric[:-3]}")
        line = good.plot(rates, [lv["goodput"] for lv in shown], "-o", markersize=3, label=f"{label} goodput")[0]
        if found["capacity_mean"]:
            good.axvline(found["capacity_mean"], color=line.get_color(), linestyle="--",
                         label=f"{label} capacity {found['capacity_mean']:.2f}/s")
            if found["capacity_ci_low"] is not None:
                good.axvspan(found["capacity_ci_low"], found["capacity_ci_high"], color=line.get_color(), alpha=0.15)
    for metric, by_q in record["objectives"].items():
        for q, limit in by_q.items():
            if metric != "e2e_ms":
                lat.axhline(limit, color="grey", linewidth=0.8, linestyle="-.")
                lat.text(0.01, limit, f" {metric[:-3]} {q} objective", color="grey", fontsize=7, va="bottom",
                         transform=lat.get_yaxis_transform())
    empty = not any(found["levels"] for found in record["results"])
    lat.set(xlabel="offered load (requests/s)", ylabel="ms", yscale="log", title=f"{record['sweep']}: latency")
    good.set(xlabel="offered load (requests/s)", ylabel="requests/s meeting the objectives",
             title=f"{record['sweep']}: goodput")
    plots.finish(lat, empty, "no measured level")
    plots.finish(good, empty, "no measured level")
    plots.save(fig, png, svg)


def turns_figure(record: Mapping[str, Any], png: Path, svg: Path) -> None:
    """A conversation sweep's TTFT p90 of each turn index against the conversations in flight (each level's
    measured mean): where the later turns, which carry the history, part from the first."""
    fig, ax = plots.plt.subplots(figsize=(7.5, 4.5))
    for found in record["results"]:
        shown = [lv for lv in found["levels"] if lv.get("turn_ttft_p90_ms") and lv.get("concurrent_sessions")]
        for turn in sorted({t for lv in shown for t in lv["turn_ttft_p90_ms"]}, key=int):
            points = [(lv["concurrent_sessions"], lv["turn_ttft_p90_ms"][turn]) for lv in shown
                      if turn in lv["turn_ttft_p90_ms"]]
            ax.plot(*zip(*points), "-o", markersize=3, label=f"{found['build']}/{found['model']} turn {turn}")
    for by_q in record["objectives"].get("ttft_ms", {}).values():
        ax.axhline(by_q, color="grey", linewidth=0.8, linestyle="-.")
    ax.set(xlabel="conversations in flight (mean over the level)", ylabel="TTFT p90, ms", yscale="log",
           title=f"{record['sweep']}: TTFT by turn against concurrent conversations")
    plots.finish(ax, not ax.lines, "not a conversation sweep")
    plots.save(fig, png, svg, has_data=bool(ax.lines))

"""An A/A load sweep, repeated: do two builds of the same binaries get capacities within each other's intervals?

    .venv/bin/python benchmarks/load_aa.py [--runs 5] [--rounds 3] [--workdir runs/load-aa]

Each run is one Snakemake run of its own directory (a fresh pilot, fresh levels) on the default config's Gemma 3
270M: one load sweep over ``cpu-rpc`` and ``twin``, the same CMake options (a cache hit of one build, so the same
binaries), with test_load.py's tiny requests and coarse pilot (12 requests a level, factor 2) — the setting in
which a single false saturation alarm once made the two differ sixfold. It prints, per run, each build's pilot
(levels, which saturations were confirmed and which were false alarms), its capacity over the rounds with the 95 %
interval, whether each capacity lies within the other's interval and whether the intervals overlap, and the paired
comparison of the two; at the end in how many runs the intervals overlapped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from llamabench.core import records  # noqa: E402

TEST_CONFIG = yaml.safe_load((ROOT / ".test" / "config" / "config.yaml").read_text())


def config(rounds: int) -> dict[str, Any]:
    """tests/test_load.py's sweep: the small test config without its grid, two builds of the same options."""
    found = {**TEST_CONFIG, "builds": {"cpu-rpc": TEST_CONFIG["builds"]["cpu-rpc"],
                                       "twin": TEST_CONFIG["builds"]["cpu-rpc"]}}
    found["benchmark"] = {**TEST_CONFIG["benchmark"], "rounds": rounds, "groups": {}, "include": []}
    found["serving"] = {**TEST_CONFIG["serving"], "scenarios": {}}
    found.update(rpc={"topologies": {}}, tune={})
    found["load"] = {"chat": {"settings": {"prompt_tokens": 32, "max_tokens": 8}, "requests": 12,
                              "pilot": {"requests": 12, "factor": 2, "refine": 0.3, "max_levels": 6},
                              "objectives": {"ttft_ms": {"p90": 1500}}}}
    return found


def within(value: float | None, other: dict[str, Any]) -> bool:
    low, high = other["capacity_ci_low"], other["capacity_ci_high"]
    return value is not None and low is not None and low <= value <= high


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two capacities' 95 % intervals share a rate (an interval of rounds that all chose one level is that
    level alone)."""
    if a["capacity_ci_low"] is None or b["capacity_ci_low"] is None:
        return False
    return a["capacity_ci_low"] <= b["capacity_ci_high"] and b["capacity_ci_low"] <= a["capacity_ci_high"]


def one_run(workdir: Path, rounds: int) -> bool:
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config(rounds)))
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                           "--cores", "2", "results/load/chat.json", "results/comparisons.csv"],
                          capture_output=True, text=True)
    if done.returncode:
        print(done.stdout[-3000:], done.stderr[-3000:])
        return False
    for build in ("cpu-rpc", "twin"):
        pilot = records.read(workdir / f"results/load/chat/pilot/{build}/gemma3-270m.json", "load_pilot")
        ladder = ", ".join(f"{lv['rate']:.2f}{' sat' if lv['saturated'] else ''}"
                           f"{' (false alarm)' if lv.get('false_alarm') else ''}" for lv in pilot["levels"])
        print(f"  pilot {build}: {ladder}; ended {pilot['ended']}")
    sweep = records.read(workdir / "results/load/chat.json", "load_sweep")
    found = {r["build"]: r for r in sweep["results"]}
    a, b = found["cpu-rpc"], found["twin"]
    for name, own, other in (("cpu-rpc", a, b), ("twin", b, a)):
        print(f"  {name}: capacity {own['capacity_mean']} req/s (95 % CI {own['capacity_ci_low']}-"
              f"{own['capacity_ci_high']}), rounds {own['capacity_rounds']}; within the other's interval: "
              f"{within(own['capacity_mean'], other)}")
    pairs = pd.read_csv(workdir / "results/comparisons.csv")
    pair = pairs[pairs["test"] == "capacity_rps"]
    if len(pair):
        row = pair.iloc[0]
        print(f"  twin / cpu-rpc = {row['ratio']:.3f} (95 % CI {row['ratio_ci_low']:.3f}-{row['ratio_ci_high']:.3f}),"
              f" p_adjusted {row['p_adjusted']:.3g}: {row['verdict']}")
    print(f"  intervals overlap: {overlap(a, b)}; {time.monotonic() - start:.0f} s")
    return overlap(a, b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "load-aa")
    args = parser.parse_args()
    agreed = 0
    for run in range(1, args.runs + 1):
        print(f"run {run}:", flush=True)
        agreed += one_run(args.workdir / f"run-{run}", args.rounds)
    print(f"the two capacities' intervals overlapped in {agreed} of {args.runs} runs")


if __name__ == "__main__":
    main()

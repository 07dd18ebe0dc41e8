"""A load sweep on this machine with the default model: does it find saturation by itself, agree with a
concurrency-1 cell at light load, and repeat its capacity across rounds?

    .venv/bin/python benchmarks/load_sweep.py [--workdir runs/load-sweep] [--rounds 3] [--requests 40]

One Snakemake run holds (interleaved by round, under the one machine lock), on the default config's Gemma 3
270M and the cpu-rpc build the tests share:

- a load sweep with Poisson arrivals and p90 objectives (TTFT p90 <= 1000 ms, inter-token p90 <= 200 ms): its
  pilot climbs by 1.5x from 0.3 requests per one request's time alone until a saturated level is confirmed by
  the level above, then refines near the knee to 8 %; every chosen level is measured in every round;
- a serving scenario with the same settings at concurrency 1 (closed: one request at a time), whose TTFT p50
  has a 95 % interval over the same rounds.

It prints the pilot's levels and where it found saturation, the lowest level's TTFT p50 against the
concurrency-1 cell's interval, each round's capacity and its largest deviation from their mean, and how the
client and the server shared the cores.
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

DEFAULTS = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
SETTINGS = {"prompt_tokens": 64, "max_tokens": 16, "ctx_size": 2048, "parallel": 2}
OBJECTIVES = {"ttft_ms": {"p90": 1000}, "itl_ms": {"p90": 200}}


def config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "builds": {"cpu-rpc": {"cmake_options": ["-DGGML_RPC=ON"]}},
        "benchmark": {"builds": [], "rounds": args.rounds, "repetitions": 1, "groups": {}, "exclude": [],
                      "defaults": {"n_prompt": 64, "n_gen": 16}},
        "serving": {"builds": [], "defaults": {**SETTINGS, "requests": args.requests},
                    "scenarios": {"one-at-a-time": {"concurrency": [1]}}},
        "rpc": {"topologies": {}},
        "load": {"chat": {"settings": SETTINGS, "requests": args.requests, "objectives": OBJECTIVES,
                          "pilot": {"requests": 20, "factor": 1.5, "refine": 0.08, "max_levels": 14}}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "load-sweep")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config(args)))
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                    "--cores", "2"], check=True)
    wall = time.monotonic() - started
    sweep = records.read(workdir / "results" / "load" / "chat.json", "load_sweep")
    [pilot] = [records.read(p, "load_pilot") for p in (workdir / "results/load/chat/pilot").rglob("*.json")]
    print(f"\nrun wall time {wall / 60:.1f} min")
    print(f"pilot: one request alone {pilot['single_request_s'] * 1000:.0f} ms, start {pilot['start_rate']} req/s, "
          f"ended: {pilot['ended']}")
    for level in pilot["levels"]:
        print(f"  {level['rate']:7.3g} req/s  TTFT p90 {level['ttft_p90_ms']:7.0f} ms  goodput {level['goodput']:5.2f}"
              f"  saturated {level['saturated']!s:5}  (Kendall p: TTFT {level['ttft_p']:.2g}, in flight "
              f"{level['in_flight_p']:.2g})  meets {level['meets']}")
    [result] = sweep["results"]
    metrics = records.read_table(workdir / "results" / "metrics.csv", "metric_row")
    one = metrics[(metrics["kind"] == "serve_cell") & (metrics["metric"] == "ttft_p50_ms")].iloc[0]
    lowest = result["levels"][0]
    per_round = [r["ttft_p50_ms"] for r in lowest["rounds"] if r.get("ttft_p50_ms") is not None]
    inside = one["ci_low"] <= lowest["ttft_p50_ms"] <= one["ci_high"]
    print(f"lowest level {lowest['rate']} req/s: TTFT p50 {lowest['ttft_p50_ms']:.1f} ms (rounds "
          f"{', '.join(f'{v:.1f}' for v in per_round)}); concurrency-1 cell {one['mean']:.1f} ms "
          f"(95 % CI {one['ci_low']:.1f}-{one['ci_high']:.1f}): {'inside' if inside else 'OUTSIDE'} the interval")
    alone = lowest["ttft_p50_alone_ms"]
    print(f"  its {lowest['alone_share']:.0%} of requests that found the server idle: TTFT p50 {alone:.1f} ms, "
          f"{'inside' if one['ci_low'] <= alone <= one['ci_high'] else 'outside'} the concurrency-1 interval "
          f"(the others arrived while one was in flight)")
    print("capacity by round: " + ", ".join(f"{r['round']}: {r['capacity']}" for r in result["rounds"]))
    print(f"capacity {result['capacity_mean']:.3g} req/s (95 % CI {result['capacity_ci_low']}-"
          f"{result['capacity_ci_high']}), largest deviation of a round {result['capacity_max_deviation']:.1%} "
          f"({'within' if result['capacity_max_deviation'] <= 0.10 else 'beyond'} ±10 %)")
    levels = pd.DataFrame([{k: lv[k] for k in ("rate", "achieved_rate", "ttft_p50_ms", "ttft_p90_ms", "itl_p90_ms",
                                                "goodput", "rounds_meeting", "rounds_saturated")}
                           for lv in result["levels"]])
    print(levels.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(result["sentence"])


if __name__ == "__main__":
    main()

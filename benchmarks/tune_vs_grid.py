"""The tuner against the full grid of the same space, side by side in one Snakemake run on this machine.

    .venv/bin/python benchmarks/tune_vs_grid.py [--workdir runs/tune-vs-grid] [--shape qwen2.5-0.5b --type Q4_K_M]
                                                 [--depth 512] [--large] [--quick]

One run holds (interleaved by round, under the one machine lock):

- the grid: every combination of threads x batch x ubatch x flash attention x K/V cache types (48 valid, plus
  the defaults), each in 5 rounds, as benchmark cells;
- a tuning study over the same space (race mode), measuring into its own cells;
- with ``--large``: a study over several hundred candidates (coordinate descent), compared with the grid's
  estimated time (candidates x 5 x the median measured grid cell).

The model is a synthetic one of a larger shape (default: Qwen2.5 0.5B at Q4_K_M: random weights, the real
shape and tensor types; on 2 cores its grid alone takes about 90 minutes, ``--shape bundled`` takes the default
config's real Gemma 3 270M instead, about 40), the workload a 512-token prompt and 32 generated tokens at a depth
where flash attention and K/V types matter. It prints the tuner's pick against the grid's best (by the grid's own
5 rounds), whether the pick is within delta or the grid's best is in the tuner's indistinguishable set, the
measuring time of each (the llama-bench processes' wall time; the run's wall time too), the rounds on the winner,
and how many candidates the first-round screen dropped that the grid puts within delta of its best.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from llamabench.core import configuration, layout, plan, records  # noqa: E402
from llamabench.derive import race  # noqa: E402

SPACE = {"threads": [1, 2], "batch_size": [512, 2048], "ubatch_size": [128, 512], "flash_attn": ["on", "off"],
         "cache_type_k": ["f16", "q8_0"], "cache_type_v": ["f16", "q8_0"]}
LARGE = {"threads": [1, 2], "batch_size": [256, 512, 1024, 2048], "ubatch_size": [64, 128, 256, 512],
         "flash_attn": ["on", "off"], "cache_type_k": ["f16", "q8_0", "q4_0"], "cache_type_v": ["f16", "q8_0", "q4_0"]}
DEFAULTS = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
OBJECTIVE = {"metric": "mix", "weights": {"pp": 1, "tg": 1}}
DELTA = 0.05


def config(args: argparse.Namespace) -> dict[str, Any]:
    space = {k: v[:1] + v[-1:] if args.quick and k in ("batch_size", "cache_type_k") else v for k, v in SPACE.items()}
    study = {"objective": OBJECTIVE, "space": space, "budget": {"rounds": 14}, "min_rounds": 5, "delta": DELTA}
    studies = {"race": study}
    if args.large:
        studies["coordinate"] = {**study, "space": LARGE, "budget": {"rounds": 40}}
    return {
        "builds": {"cpu-rpc": {"cmake_options": ["-DGGML_RPC=ON"]}},
        "models": ({"gemma3-270m": DEFAULTS["models"]["gemma3-270m"]} if args.shape == "bundled" else
                   {"larger": {"kind": "synthetic", "shape": args.shape, "type": args.type, "build": "cpu-rpc"}}),
        "benchmark": {"builds": [], "rounds": 5, "repetitions": 2, "disturbance": {"max_share": 0.25},
                      "defaults": {"threads": 2, "n_prompt": 512, "n_gen": 32, "n_depth": args.depth},
                      "groups": {"grid": space}, "exclude": [{"flash_attn": "off", "cache_type_v": "q8_0"}],
                      "include": []},
        "serving": {"builds": [], "scenarios": {}},
        "rpc": {"topologies": {}},
        "tune": studies,
    }


def means(found: dict[str, dict[int, dict[str, Any]]]) -> dict[str, float]:
    """Each candidate's mean log score over the rounds it has."""
    return {c: statistics.fmean(xs) for c, rounds in found.items()
            if (xs := [o["x"] for o in rounds.values() if o.get("x") is not None])}


def seconds(paths: list[Path]) -> float:
    return sum(records.read(p, "bench_cell")["llama_bench"].get("duration_s") or 0.0 for p in paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "tune-vs-grid")
    parser.add_argument("--shape", default="qwen2.5-0.5b", help="a synthetic shape, or bundled: the real Gemma 3 "
                        "270M Q4_K_M of the default config (about 2.5x faster per cell)")
    parser.add_argument("--type", default="Q4_K_M")
    parser.add_argument("--depth", type=int, default=512)
    parser.add_argument("--large", action="store_true", help="add a study of several hundred candidates")
    parser.add_argument("--quick", action="store_true", help="a 12-candidate space, to try the script")
    args = parser.parse_args()
    raw = config(args)
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "config").mkdir(exist_ok=True)
    (args.workdir / "config" / "config.yaml").write_text(yaml.safe_dump(raw))
    the_plan = plan.make(configuration.resolve(raw))
    grid = [cell.path for cell in the_plan.planned("bench_cell")]
    targets = [*grid, *(layout.path("tune", study=name) for name in the_plan.studies)]
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(args.workdir),
                    "--cores", "2", *targets], check=True)
    wall = time.monotonic() - started
    grid_paths = [args.workdir / p for p in grid]
    observed = race.observations(records.read_each(grid_paths, race.cell_kind), OBJECTIVE, 0.25)
    grid_means = means(observed)
    best = max(grid_means, key=grid_means.get)
    grid_s = seconds(grid_paths)
    median_cell = statistics.median(records.read(p, "bench_cell")["llama_bench"]["duration_s"] for p in grid_paths)
    print(f"\nrun wall time {wall / 60:.1f} min; grid: {len(grid_means)} candidates x 5 rounds = {len(grid_paths)} "
          f"cells, {grid_s / 60:.1f} measuring min (median cell {median_cell:.1f} s)")
    print(f"grid's best: {best} {math.exp(grid_means[best]):.2f} (geometric mean of pp and tg t/s)")
    summary: dict[str, Any] = {"grid": {"cells": len(grid_paths), "measuring_s": grid_s, "best": best,
                                        "median_cell_s": median_cell, "wall_s": wall}}
    for name, study in the_plan.studies.items():
        found = records.read(args.workdir / layout.path("tune", study=name), "tune")
        [result] = found["results"]
        cells = sorted((args.workdir / "results" / "tune" / name / "cells").rglob("*.json"))
        tune_s = seconds(cells)
        winner = result["winner"]["id"] if result["winner"] else None
        ratio = math.exp(grid_means[winner] - grid_means[best]) if winner in grid_means else None
        in_set = best in [c["id"] for c in result["indistinguishable"]]
        screened = [c for c in result["candidates"] if (c["reason"] or "").startswith("screened")
                    and c["id"] in grid_means and grid_means[c["id"]] >= grid_means[best] - math.log1p(DELTA)]
        winner_rounds = next((c["rounds"] for c in result["candidates"] if c["fate"] == "winner"), 0)
        reference = grid_s if name == "race" else len(study.candidates) * 5 * median_cell
        line = {"study": name, "mode": found["mode"], "candidates": found["space_size"], "end": result["end_reason"],
                "winner": result["winner"]["label"] if result["winner"] else None,
                "winner_vs_grid_best": ratio, "grid_best_in_set": in_set, "cells": len(cells),
                "rounds": result["spent"]["rounds"], "winner_rounds": winner_rounds, "measuring_s": tune_s,
                "vs_grid_time": tune_s / reference, "speedup": result["speedup"],
                "screened_within_delta": [c["id"] for c in screened], "sentence": result["sentence"]}
        summary[name] = line
        grid_kind = "the grid's measured" if name == "race" else "the grid's estimated"
        print(f"\n[{name}] {found['mode']}, {found['space_size']} candidates: ended {result['end_reason']} after "
              f"{result['spent']['rounds']} rounds, {len(cells)} cells, winner measured in {winner_rounds} rounds")
        print(f"  pick: {line['winner']}; by the grid's rounds {ratio:.3f}x the grid's best "
              f"({'within' if ratio and ratio >= 1 / (1 + DELTA) else 'NOT within'} delta {DELTA:.0%}); grid's "
              f"best in the indistinguishable set: {in_set}")
        print(f"  measuring time {tune_s / 60:.1f} min = {line['vs_grid_time']:.2f}x {grid_kind} "
              f"({reference / 60:.1f} min)")
        print(f"  screened out in round 1 though within delta of the grid's best: {len(screened)}")
        print(f"  {result['sentence']}")
    (args.workdir / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()

"""Check that a workflow cell measures what a hand run of llama-bench measures.

    .venv/bin/python benchmarks/compare_hand_run.py [results/cells/<build>/<model>/<cell>.json ...]

Without arguments it takes every successful cell under results/cells. For each
cell, side by side in this one run, it alternates (A B B A) the cell run
through the workflow (``snakemake --forcerun <cell>``) and the same llama-bench
command line run by hand (no workflow code in between), then prints both
means, their ratio and whether they differ by less than the combined
standard deviation. Run it on an otherwise idle machine from the repository
root, after a complete ``make run``.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path


def test_name(record: dict) -> str:
    return f"pp{record['n_prompt']}" if record["n_prompt"] else f"tg{record['n_gen']}"


def workflow_run(cell_path: Path) -> tuple[list[str], dict[str, list[float]]]:
    subprocess.run([sys.executable, "-m", "snakemake", str(cell_path), "--cores", "2", "--forcerun", str(cell_path)],
                   check=True, capture_output=True)
    run = json.loads(cell_path.read_text())["llama_bench"]
    if run["status"] != "ok":
        raise RuntimeError(f"{cell_path} failed: {run['error']}")
    return run["command"], {test_name(r): r["samples_ts"] for r in run["records"]}


def hand_run(command: list[str]) -> dict[str, list[float]]:
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return {test_name(r): r["samples_ts"] for r in json.loads(out.stdout)}


def compare(cell_path: Path, ratios: list[float]) -> bool:
    command, first = workflow_run(cell_path)
    samples = {"workflow": [first], "hand": [hand_run(command), hand_run(command)]}
    samples["workflow"].append(workflow_run(cell_path)[1])
    print(f"\n{cell_path}\n  {' '.join(command)}")
    print(f"  {'test':<8}{'workflow t/s':>22}{'hand run t/s':>22}{'ratio':>8}  within stddev")
    agree = True
    for test in first:
        wf = [v for run in samples["workflow"] for v in run[test]]
        hd = [v for run in samples["hand"] for v in run[test]]
        tolerance = math.hypot(statistics.stdev(wf), statistics.stdev(hd))
        within = abs(statistics.mean(wf) - statistics.mean(hd)) <= tolerance
        agree &= within
        ratios.append(statistics.mean(wf) / statistics.mean(hd))
        print(f"  {test:<8}{statistics.mean(wf):>13.2f} ± {statistics.stdev(wf):<6.2f}"
              f"{statistics.mean(hd):>13.2f} ± {statistics.stdev(hd):<6.2f}"
              f"{statistics.mean(wf) / statistics.mean(hd):>8.3f}  {'yes' if within else 'NO'}")
    return agree


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted(
        p for p in Path("results/cells").rglob("*.json") if json.loads(p.read_text())["llama_bench"]["status"] == "ok"
    )
    if not paths:
        print("no successful cells found: run the workflow first (make run)")
        return 1
    ratios: list[float] = []
    results = [compare(p, ratios) for p in paths]
    print(f"\n{sum(results)} of {len(results)} cells agree with the hand run within one combined stddev")
    # Per-test noise cancels out over many tests; a systematic cost of the workflow would not.
    print(f"geometric mean of workflow/hand ratios over {len(ratios)} tests: {statistics.geometric_mean(ratios):.3f} "
          f"(range {min(ratios):.3f}-{max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

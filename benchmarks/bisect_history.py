"""A bisect over N = 16 commits, a null bisect and a history of every commit, through Snakemake; prints the numbers.

    python benchmarks/bisect_history.py WORKDIR [--culprit 11] [--broken 6] [--fixture tests/data/history-series.json]
    python benchmarks/bisect_history.py WORKDIR --pause-us 2000 --repeat 3 --bisect-only

WORKDIR gets a git repository of the default source's llama.cpp tree with 16 commits on top
(tests/git_history.py: the culprit caps the CPU backend's threads, the broken one does not compile and the next
restores it, the others edit a document) and a workflow run in WORKDIR/run. Three Snakemake runs, one after the
other, each timed: the bisect good -> bad (its builds are cold but for the good endpoint, whatever ccache holds),
the null bisect good -> culprit - 1, and the history of every commit. Printed: each study's builds (cache hits
counted), cells, seconds measuring, wall time, and every probe's verdict. ``--fixture`` writes the history's
per-commit, per-round tokens/s (what tests/test_changes.py replays).

``--pause-us`` makes the culprit a smaller slowdown of one's choosing (a sleep in every graph plan; 2000 us is
about 10-20 % of tg16 here) instead of the thread cap, and ``--repeat K`` runs the bisect K times, each in a fresh
run directory (its probe builds cache hits after the first), and counts how often it named the culprit, ended
inconclusive, or named another commit (which it must never do).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))

import git_history  # noqa: E402
from llamabench import source  # noqa: E402
from llamabench.core import records  # noqa: E402

N = 16
CELLS = [{"n_prompt": 0, "n_gen": 16}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--culprit", type=int, default=11)
    parser.add_argument("--broken", type=int, default=6)
    parser.add_argument("--fixture", type=Path)
    parser.add_argument("--pause-us", type=int)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--bisect-only", action="store_true")
    args = parser.parse_args()
    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    tree = Path(source.fetch(default["sources"]["main"])["source_dir"])
    repo, run = args.workdir / "llama.cpp", args.workdir / "run"
    shutil.rmtree(args.workdir, ignore_errors=True)
    git_history.first_commit(tree, repo)
    commits = git_history.extend(repo, N, culprit=args.culprit, broken=args.broken, pause_us=args.pause_us)
    study = {"source": "upstream", "cells": CELLS, "build": "cpu-rpc"}
    config = {
        "sources": {"upstream": {"kind": "git", "url": repo.as_uri(), "ref": "b9999"}},
        "builds": {"cpu-rpc": default["builds"]["cpu-rpc"]},
        "models": {"gemma3-270m": default["models"]["gemma3-270m"]},
        "smoke": {"n_predict": 4},
        "benchmark": {"builds": [], "repetitions": 2, "rounds": 1, "defaults": {"n_prompt": 16, "n_gen": 4},
                      "groups": {}, "exclude": []},
        "serving": {"builds": [], "scenarios": {}},
        "rpc": {"topologies": {}},
        "bisect": {"slow": {**study, "good": "b9999", "bad": "master"},
                   "null": {**study, "good": "b9999", "bad": commits[args.culprit - 1]}},
        "history": {"every": {**study, "from": "b9999", "to": "master"}},
    }
    outcomes = []
    for attempt in range(1, args.repeat + 1):
        workdir = run if args.repeat == 1 else run.with_name(f"run-{attempt}")
        (workdir / "config").mkdir(parents=True)
        (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
        studies = [("bisect", "results/bisect/slow.json")]
        if not args.bisect_only and attempt == 1:
            studies += [("null bisect", "results/bisect/null.json"), ("history", "results/history-studies/every.json")]
        for name, target in studies:
            start = time.monotonic()
            subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                            "--cores", "2", target], check=True, capture_output=True)
            print(f"\n== {name}{f' (run {attempt})' if args.repeat > 1 else ''}: {time.monotonic() - start:.0f} s wall")
            results = workdir / "results"
            if name == "history":
                report_history(records.read(results / "history-studies/every.json", "history_study"), commits, args)
            else:
                found = records.read(results / target.removeprefix("results/"), "bisect_study")
                report_bisect(found, commits, args)
                if name == "bisect":
                    outcomes.append(outcome(found, commits, args))
        if args.fixture and attempt == 1 and not args.bisect_only:
            write_fixture(workdir / "results", commits, args)
    print(f"\nbisects: {outcomes.count('culprit')} named the culprit, {outcomes.count('inconclusive')} "
          f"inconclusive, {outcomes.count('wrong')} named another commit, of {len(outcomes)}")


def outcome(found: dict, commits: list[str], args: argparse.Namespace) -> str:
    """culprit, inconclusive (the range left open, or several candidates) or wrong (another commit named)."""
    if not found["culprit"]:
        return "inconclusive"
    return "culprit" if found["culprit"]["commit"] == commits[args.culprit] else "wrong"


def report_bisect(found: dict, commits: list[str], args: argparse.Namespace) -> None:
    n = len(found["commits"]) - 1
    built = found["builds"]
    print(f"{found['sentence']}")
    print(f"N = {n}: {len(built)} builds (bound ceil(log2 N) + 2 = {math.ceil(math.log2(n)) + 2 if n else 2}), "
          f"{sum(b['cache_hit'] for b in built)} cache hits, {sum(b['status'] == 'build_failed' for b in built)} "
          f"failed; {found['cells']} cells, {found['measuring_s']:.0f} s measuring, {found['steps']} steps")
    for p in found["probes"]:
        if p["target"] is None:
            e = p["endpoints"]
            print(f"  endpoints: bad/good {e.get('ratio', float('nan')):.3f} p={e.get('p_value')} "
                  f"({p['rounds']} rounds)")
        elif p.get("vs_good"):
            print(f"  probe {p['probe']} #{p['target']}: {p['verdict']}; vs good {p['vs_good']['ratio']:.3f} "
                  f"p={p['vs_good'].get('p_value', float('nan')):.2g}, vs bad {p['vs_bad']['ratio']:.3f} "
                  f"p={p['vs_bad'].get('p_value', float('nan')):.2g} ({p['rounds']} rounds)")
        elif p.get("vs_parent"):
            test = p["vs_parent"]
            print(f"  confirmation #{p['target']} beside #{p['parent']}: {p['verdict']}; "
                  f"{test.get('ratio', float('nan')):.3f} p={test.get('p_value', float('nan')):.2g} "
                  f"({p['rounds']} rounds)")
        else:
            print(f"  probe {p['probe']} #{p['target']}: {p['verdict']}")
    if found["culprit"]:
        right = found["culprit"]["commit"] == commits[args.culprit]
        print(f"  culprit #{found['culprit']['position']} {'right' if right else 'WRONG'}")


def report_history(found: dict, commits: list[str], args: argparse.Namespace) -> None:
    print(found["sentence"])
    print(f"{len(found['series'])} commits, {found['measuring_s']:.0f} s measuring, sigma of a commit's mean "
          f"{math.sqrt(found['variance'] or 0) * 100:.2f} %")
    for c in found["changes"]:
        print(f"  change #{c['before_position']} -> #{c['after_position']}: x{c['ratio']:.3f} "
              f"p_adj={c['p_adjusted']:.2g} {'confirmed' if c['confirmed'] else 'not confirmed'}")


def write_fixture(results: Path, commits: list[str], args: argparse.Namespace) -> None:
    """Per commit (by position) and round: tokens/s of the history's cells, and what the history was."""
    series: dict[int, dict[int, float]] = {}
    for path in sorted((results / "history-studies/every/cells").glob("*/*/*.json")):
        cell = records.read(path, "bench_cell")
        run = cell["llama_bench"]
        if run["status"] != "ok":
            continue
        position = commits.index(cell["build"]["commit"])
        series.setdefault(position, {})[cell["round"]] = round(float(run["records"][0]["avg_ts"]), 3)
        host = cell["host"]
    args.fixture.write_text(json.dumps({
        "made_by": "benchmarks/bisect_history.py --fixture (the history study of every commit, 3 rounds, tg16, cpu-rpc "
                   "build of each commit, gemma3-270m Q4_K_M)",
        "host": {"cpu": host["cpu"], "logical_cpus": host["logical_cpus"]},
        "culprit": args.culprit, "broken": args.broken,
        "tps": {str(p): {str(r): v for r, v in sorted(by_round.items())} for p, by_round in sorted(series.items())},
    }, indent=1) + "\n")
    print(f"fixture: {args.fixture}")


if __name__ == "__main__":
    main()

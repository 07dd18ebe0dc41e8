"""Conversations on the real Gemma 3 270M: turn-by-turn TTFT with the prompt cache off and on, and how many
conversations the machine holds at two slot counts.

    .venv/bin/python benchmarks/sessions.py WORKDIR [--rounds 3] [--turns 5]

One Snakemake run in WORKDIR on the default source and model:

- serving cells of ``--turns``-turn conversations behind a 256-token shared system prompt (64 new user tokens
  and 16 generated per turn, 3 conversations, 2 in flight), with ``cache`` cold (cache_prompt false: every turn
  processes its whole history) and warm, and warm with ``swa_full: on`` (Gemma 3's sliding-window cache made
  full size: a new conversation can then reuse the shared prefix another slot left), in ``--rounds`` rounds;
- a load sweep of such conversations (4 turns, warm, think time 0.5 s, 8 conversations a level) at two slot counts
  (``parallel`` 1 and 2, one sweep each, the pilot finding the levels), objectives TTFT p90 <= 3000 ms in every
  turn.

It prints each cell's TTFT by turn (mean over rounds of each round's median) with the reused share, the findings
comparing the settings turn by turn (paired by round), each sweep's answer in conversations, and the wall time.
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
DEFAULTS = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def config(rounds: int, turns: int) -> dict[str, Any]:
    conversation = {"turns": turns, "prefix_tokens": 256, "prompt_tokens": 64, "max_tokens": 16}
    return {
        "builds": {"cpu": {"cmake_options": []}},
        "models": {"gemma3-270m": DEFAULTS["models"]["gemma3-270m"]},
        "benchmark": {"builds": [], "rounds": rounds, "groups": {}, "exclude": [], "include": []},
        "quality": {"enabled": False},
        "serving": {"builds": [],
                    "scenarios": {
                        "agent": {**{k: [v] for k, v in conversation.items()}, "requests": [3], "concurrency": [2],
                                  "cache": ["cold", "warm"]},
                        "agent-swa-full": {**{k: [v] for k, v in conversation.items()}, "requests": [3],
                                           "concurrency": [2], "cache": ["warm"], "swa_full": ["on"]}}},
        "rpc": {"topologies": {}},
        "tune": {},
        "load": {f"agents-np{n}": {"settings": {**conversation, "turns": 4, "cache": "warm", "think_ms": 500,
                                                "parallel": n},
                                   "requests": 8,
                                   "pilot": {"factor": 2, "refine": 0.3, "max_levels": 5},
                                   "objectives": {"ttft_ms": {"p90": 3000}}} for n in (1, 2)},
        "comparisons": {},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    (args.workdir / "config").mkdir(parents=True, exist_ok=True)
    (args.workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config(args.rounds, args.turns),
                                                                        sort_keys=False))
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(args.workdir),
                          "--cores", "2", "--keep-going"], capture_output=True, text=True)
    wall = time.monotonic() - start
    results = args.workdir / "results"
    if not (results / "findings.csv").exists():
        print(run.stdout[-3000:], run.stderr[-3000:])
        return 1
    turns = pd.read_csv(results / "serving_turns.csv")
    label = turns["cache"] + turns["swa_full"].map(lambda v: ", swa_full on" if v == "on" else "")
    table = (turns.assign(setting=label).groupby(["setting", "turn"])
             .agg(ttft_p50_ms=("ttft_p50_ms", "mean"), ttft_min=("ttft_p50_ms", "min"),
                  ttft_max=("ttft_p50_ms", "max"), reused=("reused_share", "mean"), wait_p50_ms=("wait_p50_ms", "mean"),
                  rounds=("round", "nunique")).reset_index())
    print(f"TTFT by turn ({args.turns} turns, 256-token shared prefix, 64 + 16 tokens a turn; p50 per round, "
          "mean [min, max] over rounds):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    findings = pd.read_csv(results / "findings.csv")
    print("\nSettings against their baselines, turn by turn (paired by round):")
    for statement in findings[findings["question"] == "session_setting"]["statement"]:
        print(f"- {statement}")
    print("\nConversations the machine holds (load sweeps, 8 conversations a level):")
    for label, statement in findings[findings["question"] == "load_capacity"][["label", "statement"]].values:
        print(f"- {label}: {statement}")
    print(f"\nWall time: {wall:.0f} s (exit status {run.returncode})")
    return 0 if run.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

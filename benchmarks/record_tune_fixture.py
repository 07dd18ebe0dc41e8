"""Record the real measurements the tuner's statistical tests replay (tests/data/tune-*.json).

Runs llama-bench directly (no workflow) in interleaved rounds, each round in a new seeded shuffled order,
one candidate at a time, and keeps every repetition's tokens/s of each test:

    python benchmarks/record_tune_fixture.py BUILD_BIN MODEL OUT.json --rounds 8 --labels 6          # null
    python benchmarks/record_tune_fixture.py BUILD_BIN MODEL OUT.json --rounds 5 --space              # a space

The null fixture measures the same settings under ``--labels`` names; the space fixture crosses threads,
ubatch size and flash attention. Output: {"setup": ..., "candidates": {label: {"params": ..., "rounds":
{round: {"pp": [t/s per repetition], "tg": [...], "seconds": wall}}}}}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import random
import subprocess
import time
from pathlib import Path

BASE = {"-t": 2, "-b": 2048, "-ub": 512, "-fa": 1, "-p": 128, "-n": 32, "-r": 3}
SPACE = {"-t": [1, 2], "-ub": [32, 512], "-fa": [0, 1]}


def run(bench: Path, model: Path, flags: dict[str, int]) -> dict[str, list[float] | float]:
    cmd = [str(bench), "-m", str(model), "-o", "json", *[str(x) for kv in flags.items() for x in kv]]
    start = time.time()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600).stdout
    found: dict[str, list[float] | float] = {"seconds": round(time.time() - start, 3)}
    for rec in json.loads(out):
        found["pp" if rec["n_gen"] == 0 else "tg"] = rec["samples_ts"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bin_dir", type=Path)
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--labels", type=int, default=6)
    parser.add_argument("--space", action="store_true")
    args = parser.parse_args()
    if args.space:
        candidates = {"_".join(f"{k[1:]}{v}" for k, v in zip(SPACE, combo)): {**BASE, **dict(zip(SPACE, combo))}
                      for combo in itertools.product(*SPACE.values())}
    else:
        candidates = {f"copy{i}": dict(BASE) for i in range(1, args.labels + 1)}
    result = {"setup": {"machine": platform.node(), "model": args.model.name, "rounds": args.rounds,
                        "started": time.strftime("%Y-%m-%dT%H:%M:%S")},
              "candidates": {name: {"params": flags, "rounds": {}} for name, flags in candidates.items()}}
    for round_ in range(1, args.rounds + 1):
        order = sorted(candidates)
        random.Random(f"fixture:{round_}").shuffle(order)
        for name in order:
            result["candidates"][name]["rounds"][str(round_)] = run(args.bin_dir / "llama-bench", args.model,
                                                                   candidates[name])
        print(f"round {round_} done", flush=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

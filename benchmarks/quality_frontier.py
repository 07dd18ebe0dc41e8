"""Quality beside speed on the real Gemma 3 270M: the K/V frontier and a tuner held to a quality budget.

    .venv/bin/python benchmarks/quality_frontier.py WORKDIR [--chunks 8] [--max-kld 0.03]

One Snakemake run in WORKDIR on the default source and model, flash attention on (a quantised V cache needs it):
the defaults (f16 K/V) and matched K/V types q8_0, q5_1 and q4_0 as benchmark cells (3 rounds) and quality
cells (``--chunks`` chunks of 256 tokens of the tree's docs), on the bundled Q4_K_M and on a ladder of it
requantised by the build's llama-quantize (Q4_0, Q3_K_M: offline, the only weights at hand are already
quantised, so each rung is labelled "requantised from Q4_K_M" and measured against the Q4_K_M's reference); a
tuning study over the same four K/V pairs, named candidates, with ``quality: {max_kld: --max-kld}``. It prints
the frontier (quality cost with its interval over chunks beside the tg and pp ratios over the defaults with
their paired intervals, the Pareto-efficient rows marked), the study's pick with the candidates it dropped for
quality, whether the pick is on the frontier within the budget, and the run's wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
TYPES = ("q8_0", "q5_1", "q4_0")
LADDER = ("Q4_0", "Q3_K_M")


def config(chunks: int, max_kld: float) -> dict[str, Any]:
    pairs = [{"cache_type_k": t, "cache_type_v": t} for t in TYPES]
    return {
        "builds": {"cpu": {"cmake_options": []}},
        "models": {"gemma3-270m": DEFAULTS["models"]["gemma3-270m"],
                   **{f"gemma3-270m-{t.lower()}": {"kind": "quantized", "from": "gemma3-270m", "type": t}
                      for t in LADDER}},
        "benchmark": {"builds": [], "rounds": 3, "groups": {}, "exclude": [], "include": pairs,
                      "defaults": {"flash_attn": "on"}},
        "quality": {"chunks": chunks},
        "serving": {"builds": [], "scenarios": {}},
        "rpc": {"topologies": {}},
        "tune": {"kv": {"models": ["gemma3-270m"], "space": {},
                        "candidates": {t.replace("_", ""): p for t, p in zip(TYPES, pairs)},
                        "quality": {"max_kld": max_kld}, "budget": {"rounds": 8}, "min_rounds": 3}},
        "load": {}, "comparisons": {},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--max-kld", type=float, default=0.03)
    args = parser.parse_args()
    (args.workdir / "config").mkdir(parents=True, exist_ok=True)
    (args.workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config(args.chunks, args.max_kld),
                                                                        sort_keys=False))
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(args.workdir),
                          "--cores", "2"], capture_output=True, text=True)
    wall = time.monotonic() - start
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-3000:])
        return 1
    results = args.workdir / "results"
    table = pd.read_csv(results / "quality.csv")
    shown = table[["model", "setting", "kld_mean", "kld_ci_low", "kld_ci_high", "kld_p99", "same_top", "ppl_ratio",
                   "ppl_ratio_ci_low", "ppl_ratio_ci_high", "tg_ratio", "tg_ratio_ci_low", "tg_ratio_ci_high",
                   "tg_verdict", "pp_ratio", "pp_verdict", "pareto"]]
    print(f"Frontier ({args.chunks} chunks of 256 tokens; intervals: KLD and PPL over chunks, speed over paired "
          "rounds):")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    [found] = json.loads((results / "tune/kv.json").read_text())["results"]
    print(f"\nTuner (max_kld {args.max_kld}): {found['sentence']}")
    for over in found.get("over_budget", []):
        print(f"  dropped unmeasured: {over['label']}: {over['reason']}")
    pick = found["winner"]["params"] if found["winner"] else None
    if pick:
        setting = " ".join(f"-ct{k[-1]} {pick[k]}" for k in ("cache_type_k", "cache_type_v") if pick[k] != "f16")
        row = table[(table["model"] == "gemma3-270m") & (table["setting"] == (setting or "reference"))]
        on_front = bool(row["pareto"].iloc[0]) if len(row) else None
        within = bool((row["kld_ci_high"].fillna(0) <= args.max_kld).iloc[0]) if len(row) else None
        print(f"  pick {setting or 'defaults'}: on the frontier: {on_front}; within the budget by its interval: "
              f"{within}")
    print(f"\nwall time {wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Memory predicted per device against the buffers llama.cpp logged, on GPU devices: each Vulkan device, the host
and each RPC worker, for an offload sweep, two devices with a layer split and a CPU+GPU RPC topology.

    .venv/bin/python benchmarks/gpu_memory.py WORKDIR [--software]

One Snakemake run in WORKDIR on the default config's Gemma 3 270M Q4_K_M with one-repetition cells (pp8, tg4):
a Vulkan + RPC build at 0, 50 % and all layers; the same build seeing two devices (``visible_devices: 0,0``) at
all layers, split by free memory and by ``tensor_split: 3/1``; RPC across a ``-d Vulkan0`` and a ``-d CPU``
worker beside its local partner. ``--software`` runs it on Mesa's lavapipe (its two "devices" are one heap, and
its speed is no GPU's: only the buffer sizes mean anything). It prints, per device, how many of the predicted
buffers (weights, K/V, compute, output per context) lie within 10 % or 32 MiB of the logged ones, the worst of
them, and the layers each cell offloaded.
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
VULKAN = ["-DGGML_VULKAN=ON", "-DGGML_RPC=ON"]


def config(software: bool) -> dict[str, Any]:
    opt_in = {"software_device": True} if software else {}
    return {
        "builds": {"vulkan": {"cmake_options": VULKAN, "visible_devices": "0", **opt_in},
                   "vulkan-two": {"cmake_options": VULKAN, "visible_devices": "0,0", **opt_in}},
        "models": {"gemma3-270m": DEFAULTS["models"]["gemma3-270m"]},
        "smoke": {"n_predict": 4},
        "benchmark": {"builds": [], "repetitions": 1, "rounds": 1, "exclude": [],
                      "defaults": {"n_prompt": 8, "n_gen": 4, "n_gpu_layers": 0},
                      "groups": {"offload": {"builds": ["vulkan"], "n_gpu_layers": ["50%", "all"]},
                                 "split": {"builds": ["vulkan-two"], "n_gpu_layers": ["all"],
                                           "tensor_split": ["1/1", "3/1"]}}},
        "serving": {"builds": [], "scenarios": {}},
        "rpc": {"cells": [{"n_gpu_layers": "all"}], "topologies": {"cpu-gpu": {
            "client": "vulkan", "devices": ["RPC0/RPC1"],
            "workers": [{"kind": "local", "build": "vulkan", "device": "Vulkan0"},
                        {"kind": "local", "build": "vulkan", "device": "CPU", "threads": 1}]}}},
        "tune": {}, "load": {}, "comparisons": {},
        "memory": {"fit_params": False},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--software", action="store_true", help="Mesa's lavapipe (opted in, labelled)")
    args = parser.parse_args()
    (args.workdir / "config").mkdir(parents=True, exist_ok=True)
    (args.workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config(args.software), sort_keys=False))
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(args.workdir),
                    "--cores", "2", "results/memory.csv", "results/summary.csv", "results/rpc_summary.csv"],
                   check=True)
    print(f"\none Snakemake run: {time.monotonic() - started:.0f} s")
    results = args.workdir / "results"
    summary = pd.read_csv(results / "summary.csv")
    for row in summary.drop_duplicates("cell").itertuples():
        print(f"{row.build:<11} {row.cell:<58} {row.status:<8} offloaded {row.offloaded_layers} of "
              f"{row.model_layers}+1")
    memory = pd.read_csv(results / "memory.csv")
    ours = memory[(memory["predictor"] == "derive/memory.py") & memory["measured_mib"].notna()
                  & memory["component"].isin(["weights", "kv", "compute", "output"])]
    print(f"\n{'device':<28} {'within':>8} {'of':>4}  worst (predicted vs logged MiB)")
    for device, group in ours.groupby("device"):
        worst = group.loc[(group["predicted_mib"] - group["measured_mib"]).abs().idxmax()]
        print(f"{device:<28} {int(group['within_tolerance'].sum()):>8} {len(group):>4}  {worst['component']} "
              f"{worst['predicted_mib']:.1f} vs {worst['measured_mib']:.1f} ({worst['cell'][:40]})")
    share = ours["within_tolerance"].mean()
    print(f"\nall devices: {int(ours['within_tolerance'].sum())} of {len(ours)} buffers ({share:.0%}) within 10 % or "
          "32 MiB")
    return 0 if share >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())

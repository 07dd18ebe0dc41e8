"""The GPU half on this machine's GPU, cut down to minutes: one GPU + RPC build through the build cache, a tiny
offload sweep, one CPU+GPU RPC cell beside its local partner, one serving cell with every layer offloaded, then
the checks that only a real GPU of that backend can pass.

    .venv/bin/python benchmarks/gpu_check.py WORKDIR [--backend cuda|vulkan] [--software] [--source TREE] [--dry-run]

``--backend cuda`` (the default) needs nvcc and an NVIDIA GPU; the architecture is the detected GPU's (the build
rule reads it from nvidia-smi). It checks what is CUDA's alone: CUDA device names in the build's own
``--list-devices``, llama-bench's records on the CUDA backend, NVML's energy per token and peak VRAM in
``summary.csv``, cuBLAS linked into llama-bench. ``--backend vulkan`` runs the same on a Vulkan GPU; with
``--software`` on Mesa's lavapipe (``visible_devices: "0"``, ``software_device: true``), which is how this script
was developed on a machine without a GPU, and then it checks the software label instead. ``--source TREE`` builds a
llama.cpp tree already on disk (``kind: path``), for a machine without network; otherwise the default config's
sdist. The model is synthetic (llama-3.2-1b's shape, Q4_K_M; ``--software``: two small layers), so no network is
needed for it. ``--dry-run`` plans the jobs only. It prints every check with PASS or FAIL and exits non-zero on a
failure.
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

from llamabench.core import backends, records  # noqa: E402

FLAGS = {"cuda": "-DGGML_CUDA=ON", "vulkan": "-DGGML_VULKAN=ON"}
TINY = {"architecture": "llama", "layers": 2, "embedding": 256, "heads": 4, "kv_heads": 2, "ffn": 512, "vocab": 1024,
        "context": 2048, "type": "Q8_0"}


def config(backend: str, software: bool, source: Path | None) -> dict[str, Any]:
    build: dict[str, Any] = {"cmake_options": [FLAGS[backend], "-DGGML_RPC=ON"]}
    if software:
        build.update(visible_devices="0", software_device=True)
    found: dict[str, Any] = {
        "builds": {"gpu-rpc": build},
        "models": {"check": {"kind": "synthetic", **TINY} if software else
                   {"kind": "synthetic", "shape": "llama-3.2-1b", "type": "Q4_K_M", "build": "gpu-rpc"}},
        "smoke": {"n_predict": 4},
        "benchmark": {"builds": [], "repetitions": 2, "rounds": 1, "exclude": [],
                      "defaults": {"n_prompt": 64, "n_gen": 16, "n_gpu_layers": "all"},
                      "groups": {"gpu_layers": {"n_gpu_layers": [0, "50%"]}}},
        "serving": {"builds": ["gpu-rpc"], "scenarios": {"offloaded": {"n_gpu_layers": ["all"]}},
                    "defaults": {"prompt_tokens": 32, "max_tokens": 8, "requests": 3, "ctx_size": 1024,
                                 "parallel": 1}},
        "rpc": {"cells": [{}], "topologies": {"cpu-and-gpu": {
            "client": "gpu-rpc", "devices": ["RPC0/RPC1"],
            "workers": [{"kind": "local", "build": "gpu-rpc", "device": "CPU", "threads": 2},
                        {"kind": "local", "build": "gpu-rpc", "device": "GPU0"}]}}},
        "tune": {}, "load": {}, "comparisons": {},
    }
    if source:
        found["sources"] = {"tree": {"kind": "path", "path": str(source)}}
    return found


def check(results: Path, backend: str, software: bool) -> list[tuple[str, bool, str]]:
    """(what, passed, detail) for every check of the finished run."""
    build = records.read(results / "builds/gpu-rpc/manifest.json", "build")
    prefix = backends.BACKENDS[backend].device_prefix
    gpus = backends.gpu_devices(backends.BACKENDS[backend], build["devices"]["devices"])
    summary = pd.read_csv(results / "summary.csv")
    ok = summary[summary["status"] == "ok"]
    rpc = pd.read_csv(results / "rpc_summary.csv")
    served = pd.read_csv(results / "serving_summary.csv")
    cells = [records.read(p, "bench_cell") for p in (results / "cells/gpu-rpc/check").glob("*.json")]
    found = [
        (f"the build's --list-devices names {prefix} devices", bool(gpus),
         ", ".join(f"{d['name']}: {d['description']}" for d in gpus) or build["devices"]["output"]),
        ("every benchmark cell measured", len(ok) == len(summary) > 0,
         f"{len(ok)} of {len(summary)} rows ok; offloaded layers {sorted(set(ok['offloaded_layers'].dropna()))}"),
        (f"llama-bench ran on the {prefix} backend", all(prefix in r["backends"] for c in cells
                                                          for r in c["llama_bench"]["records"]),
         ", ".join(sorted({r["backends"] for c in cells for r in c["llama_bench"]["records"]}))),
        ("the CPU+GPU RPC cell beside its local partner", set(rpc["status"]) == {"ok"} and len(rpc) == 2,
         "; ".join(f"-dev {r.devices}: tg {r.tg_ts:.1f} t/s" for r in rpc.itertuples() if r.status == "ok")),
        ("the serving cell with every layer offloaded", set(served["status"]) == {"ok"},
         "; ".join(f"TTFT p50 {r.ttft_p50_ms:.0f} ms" for r in served.itertuples() if r.status == "ok")),
    ]
    if software:
        found.append(("every row labelled a software GPU", ok["software_device"].str.startswith("software GPU").all(),
                      str(build["software_device"])))
    if backend == "cuda":
        bench = Path(build["bin_dir"]) / build["binaries"]["bench"]
        linked = subprocess.run(["ldd", str(bench)], capture_output=True, text=True).stdout
        found += [
            ("NVML energy per token", bool((ok["energy_j_per_token"].fillna(0) > 0).all()),
             f"{ok['energy_j_per_token'].min():.4g}-{ok['energy_j_per_token'].max():.4g} J/token"),
            ("peak VRAM of the offloaded cells", bool((ok[ok["offloaded_layers"] > 0]["peak_vram_mib"] > 0).all()),
             f"{ok['peak_vram_mib'].max():.0f} MiB at most"),
            ("cuBLAS linked into llama-bench", "libcublas" in linked,
             next((line.strip() for line in linked.splitlines() if "cublas" in line), "not linked")),
        ]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--backend", choices=sorted(FLAGS), default="cuda")
    parser.add_argument("--software", action="store_true", help="the Vulkan software device (lavapipe)")
    parser.add_argument("--source", type=Path, help="a llama.cpp tree on disk (no network needed)")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    if args.software and args.backend != "vulkan":
        parser.error("--software is Mesa's lavapipe, a Vulkan device: use it with --backend vulkan")
    (args.workdir / "config").mkdir(parents=True, exist_ok=True)
    (args.workdir / "config" / "config.yaml").write_text(
        yaml.safe_dump(config(args.backend, args.software, args.source), sort_keys=False))
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(args.workdir),
               "--cores", "all", *(["-n"] if args.dry_run else [])]
    started = time.monotonic()
    run = subprocess.run(command)
    print(f"\nsnakemake {'dry run' if args.dry_run else 'run'}: exit {run.returncode} after "
          f"{time.monotonic() - started:.0f} s")
    if run.returncode != 0 or args.dry_run:
        return run.returncode
    results = check(args.workdir / "results", args.backend, args.software)
    for what, passed, detail in results:
        print(f"{'PASS' if passed else 'FAIL'}  {what}: {detail}")
    return 0 if all(passed for _, passed, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())

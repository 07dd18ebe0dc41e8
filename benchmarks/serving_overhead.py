"""How much of a measured TTFT is the measurement itself: client TTFT minus the server's prompt_ms.

    .venv/bin/python benchmarks/serving_overhead.py [--requests 20]

After a complete ``make run``, for every serving cell of the run at concurrency 1
(the default scenario's), this serves the same model with the same build and
settings again, sends ``--requests`` cold streaming requests one at a time, and
prints the median and spread of (client TTFT - server prompt_ms): HTTP, JSON,
scheduling and the first token's send. On loopback it should be a few
milliseconds, small beside the TTFT itself; the stored cell's own median is
printed beside it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from llamabench.core import layout, records  # noqa: E402
from llamabench.measure import llama_server  # noqa: E402


def overheads(requests: list[dict]) -> list[float]:
    return [r["ttft_ms"] - r["timings"]["prompt_ms"] for r in requests]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args(argv)
    cells = [records.read(p, "serve_cell") for p in sorted(layout.cell_dir("serve_cell").rglob("*.json"))]
    cells = [c for c in cells if c["params"]["concurrency"] == 1 and c["serving"]["status"] == "ok"]
    if not cells:
        print("no successful serving cells at concurrency 1: run the workflow first (make run)")
        return 1
    print(f"{'cell':<70}{'stored p50':>12}{'now p50':>10}{'now min-max':>16}{'TTFT p50':>10}  ms")
    medians = []
    for cell in cells:
        build = records.read(layout.path("build", build=cell["build"]["name"]), "build")
        exe = Path(build["bin_dir"]) / build["binaries"]["server"]
        model = Path(layout.path("model_file", model=cell["model"]["name"]))
        params = {**cell["params"], "requests": args.requests}
        with tempfile.TemporaryDirectory() as tmp:
            result = llama_server.measure(exe, model, params, Path(tmp) / "server.log")
        if result["status"] != "ok":
            print(f"{cell['cell']}: {result['error']}")
            continue
        now = overheads(result["requests"])
        medians.append(statistics.median(now))
        ttft = statistics.median(r["ttft_ms"] for r in result["requests"])
        stored = statistics.median(overheads(cell["serving"]["requests"]))
        print(f"{cell['build']['name'] + '/' + cell['cell']:<70}{stored:>12.2f}"
              f"{medians[-1]:>10.2f}{min(now):>8.2f}-{max(now):<7.2f}{ttft:>10.1f}")
    if medians:
        print("\nmeasuring overhead (client TTFT - server prompt_ms), median over cells: "
              f"{statistics.median(medians):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Record a load sweep's real level cells as the fixture the load statistics replay (tests/data/load-*.json).

    python benchmarks/record_load_fixture.py WORKDIR OUT.json

WORKDIR is a run of benchmarks/load_sweep.py. Keeps, per level (rate) and round, every measured request's send
and completion times, TTFT, mean inter-token gap and end-to-end latency (what derive/load.py reads), rounded to
0.1 ms, with the sweep's settings and the pilot's levels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from llamabench.core import records  # noqa: E402

KEPT = ("sent_s", "done_s", "ttft_ms", "e2e_ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    levels: dict[str, dict[str, list[dict[str, object]]]] = {}
    setup = {}
    for path in sorted((args.workdir / "results/load").glob("*/cells/*/*/*.json")):
        cell = records.read(path, "serve_cell")
        setup = {"build": cell["build"]["name"], "commit": cell["build"]["commit"], "model": cell["model"]["name"],
                 "cpu": cell["host"]["cpu"], "logical_cpus": cell["host"]["logical_cpus"],
                 "params": {k: v for k, v in cell["params"].items() if k != "rate"}}
        levels.setdefault(str(cell["params"]["rate"]), {})[str(cell["round"])] = [
            {**{k: round(r[k], 4 if k.endswith("_s") else 1) for k in KEPT},
             # each request's mean gap (all the objectives read of them), as a one-item list of gaps
             "itl_ms": [round(sum(r["itl_ms"]) / len(r["itl_ms"]), 2)] if r["itl_ms"] else []}
            for r in cell["serving"]["requests"]]
    [pilot] = [records.read(p, "load_pilot") for p in (args.workdir / "results/load").glob("*/pilot/*/*.json")]
    args.out.write_text(json.dumps({"setup": setup, "settings": pilot["settings"], "pilot": [
        {k: level[k] for k in ("rate", "saturated", "meets")} for level in pilot["levels"]], "levels": levels}) + "\n")


if __name__ == "__main__":
    main()

"""Check that an RPC cell measures what llama-bench run by hand against the same workers measures.

    .venv/bin/python benchmarks/compare_rpc_hand_run.py [results/rpc/<build>/<model>/<cell>.json ...]

Without arguments it takes every successful RPC cell of local workers under
results/rpc. For each, side by side in this one run, it alternates (A B B A) the
cell run through the workflow (``snakemake --forcerun <cell>``) and the same
llama-bench command run by hand against workers started the same way (fresh
ports, so only ``--rpc`` differs), then prints both means and their ratio. Run it
on an otherwise idle machine from the repository root, after a complete ``make run``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from llamabench.core import layout, metrics, records  # noqa: E402
from llamabench.measure import rpc_workers  # noqa: E402


def speeds(run: dict) -> dict[str, list[float]]:
    return {metrics.test_of(r): r["samples_ts"] for r in run["records"]}


def workflow_run(path: Path) -> tuple[list[str], dict[str, list[float]]]:
    subprocess.run([sys.executable, "-m", "snakemake", str(path), "--cores", "2", "--forcerun", str(path)],
                   check=True, capture_output=True)
    cell = records.read(path, "rpc_cell")
    if cell["rpc"]["status"] != "ok":
        raise RuntimeError(f"{path} failed: {cell['rpc']['error']}")
    return cell["rpc"]["llama_bench"]["command"], speeds(cell["rpc"]["llama_bench"])


def hand_run(command: list[str], workers: list[dict]) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp, rpc_workers.running(workers, "unlimited", Path(tmp) / "w.log") as up:
        cmd = list(command)
        cmd[cmd.index("--rpc") + 1] = ",".join(w["address"] for w in up)
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return {metrics.test_of(r): r["samples_ts"] for r in json.loads(out.stdout)}


def worker_specs(cell: dict) -> list[dict]:
    """The topology's workers as the config defines them, with their builds' RPC servers."""
    config = yaml.safe_load(Path("config/config.yaml").read_text())
    specs = config["rpc"]["topologies"][cell["topology"]]["workers"]
    builds = {s["build"]: records.read(layout.path("build", build=s["build"]), "build")
              for s in specs if "build" in s}
    return [rpc_workers.resolve({"threads": 1, **spec}, builds) for spec in specs]


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted(layout.cell_dir("rpc_cell").rglob("*.json"))
    cells = [(p, records.read(p, "rpc_cell")) for p in paths]
    cells = [(p, c) for p, c in cells if c["rpc"]["status"] == "ok" and c["devices"] != "none"
             and all(w["kind"] == "local" for w in c["rpc"]["workers"])]
    if not cells:
        print("no successful RPC cells of local workers: run the workflow first (make run)")
        return 1
    ratios = []
    for path, cell in cells:
        workers = worker_specs(cell)
        command, first = workflow_run(path)
        runs = {"workflow": [first], "hand": [hand_run(command, workers), hand_run(command, workers)]}
        runs["workflow"].append(workflow_run(path)[1])
        print(f"\n{path}")
        for test in first:
            wf = [v for run in runs["workflow"] for v in run[test]]
            hd = [v for run in runs["hand"] for v in run[test]]
            ratio = statistics.mean(wf) / statistics.mean(hd)
            ratios.append(ratio)
            print(f"  {test:<8} workflow {statistics.mean(wf):8.2f} ± {statistics.stdev(wf):6.2f}   "
                  f"hand {statistics.mean(hd):8.2f} ± {statistics.stdev(hd):6.2f}   ratio {ratio:.3f}")
    print(f"\ngeometric mean of workflow/hand ratios over {len(ratios)} tests: {statistics.geometric_mean(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

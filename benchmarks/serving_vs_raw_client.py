"""Does a serving cell measure what any client would? Its TTFT beside an independent raw-HTTP client's.

    .venv/bin/python benchmarks/serving_vs_raw_client.py [--requests 16] [--pairs 2]

After a complete ``make run``, for every successful serving cell at concurrency 1,
side by side in this one run, this alternates (A B B A, ``--pairs`` times) the
cell run through the workflow (``snakemake --forcerun <cell>``) and a client that
shares no code with the workflow: the server started from the cell's recorded
command line (another port), its own cold prompts of the cell's length written
from its own text and tokenized by the server, one streaming ``/completion`` at a
time over ``http.client``, two unmeasured requests first. It prints both median
TTFTs and their ratio; the workflow's warm-up, slot pinning and sampler should
leave it within 5 % (the ratio's spread over pairs says how much the VM drifts).
Run it on an otherwise idle machine from the repository root.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shlex
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from llamabench.core import layout, records  # noqa: E402

WORDS = "river stone lantern orbit meadow copper signal harbor quiet ember violet canyon thread glacier".split()


def workflow_run(path: Path) -> tuple[dict, float]:
    subprocess.run([sys.executable, "-m", "snakemake", str(path), "--cores", "2", "--forcerun", str(path)],
                   check=True, capture_output=True)
    cell = records.read(path, "serve_cell")
    if cell["serving"]["status"] != "ok":
        raise RuntimeError(f"{path} failed: {cell['serving']['error']}")
    return cell, statistics.median(r["ttft_ms"] for r in cell["serving"]["requests"])


def post(port: int, path: str, body: dict) -> tuple[http.client.HTTPConnection, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    return conn, conn.getresponse()


def ttft_ms(port: int, prompt: list[int], max_tokens: int) -> float:
    """One cold streaming completion; milliseconds from sending to the first chunk with text."""
    sent = time.perf_counter()
    conn, resp = post(port, "/completion", {"prompt": prompt, "n_predict": max_tokens, "stream": True,
                                            "cache_prompt": False, "ignore_eos": True, "temperature": 0.0})
    first = None
    for line in resp:
        if line.startswith(b"data: ") and first is None and json.loads(line[6:]).get("content"):
            first = time.perf_counter()
    conn.close()
    if first is None:
        raise RuntimeError("the server streamed no text")
    return (first - sent) * 1000


def raw_run(command: list[str], params: dict, requests: int, seed: int) -> float:
    """The cell's server command on a free port, measured by this client alone."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = list(command)
    cmd[cmd.index("--port") + 1] = str(port)
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        rng = random.Random(seed)
        prompts = []
        for _ in range(requests + 2):
            text = " ".join(rng.choice(WORDS) for _ in range(params["prompt_tokens"] * 2))
            conn, resp = post(port, "/tokenize", {"content": text, "add_special": True})
            prompts.append(json.loads(resp.read())["tokens"][: params["prompt_tokens"]])
            conn.close()
        for prompt in prompts[:2]:
            ttft_ms(port, prompt, params["max_tokens"])
        return statistics.median(ttft_ms(port, p, params["max_tokens"]) for p in prompts[2:])
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args(argv)
    paths = [p for p in sorted(layout.cell_dir("serve_cell").rglob("*.json"))
             if (c := records.read(p, "serve_cell"))["params"]["concurrency"] == 1 and c["serving"]["status"] == "ok"]
    if not paths:
        print("no successful serving cells at concurrency 1: run the workflow first (make run)")
        return 1
    ratios = []
    print(f"{'cell':<64}{'workflow p50':>14}{'raw p50':>10}{'ratio':>8}  ms")
    for path in paths:
        workflow, raw = [], []
        for pair in range(args.pairs):  # A B B A
            cell, median = workflow_run(path)
            workflow.append(median)
            raw += [raw_run(cell["serving"]["command"], cell["params"], args.requests, 2 * pair + i) for i in (0, 1)]
            workflow.append(workflow_run(path)[1])
        ratio = statistics.median(workflow) / statistics.median(raw)
        ratios.append(ratio)
        print(f"{str(path.relative_to(layout.cell_dir('serve_cell'))):<64}{statistics.median(workflow):>14.1f}"
              f"{statistics.median(raw):>10.1f}{ratio:>8.3f}  (workflow {min(workflow):.1f}-{max(workflow):.1f},"
              f" raw {min(raw):.1f}-{max(raw):.1f})")
        print(f"  {shlex.join(cell['serving']['command'])}")
    print(f"\nTTFT ratio workflow / raw client, median over {len(ratios)} cells: {statistics.median(ratios):.3f} "
          f"(range {min(ratios):.3f}-{max(ratios):.3f}); within 5 %: {abs(statistics.median(ratios) - 1) <= 0.05}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""What a serving cell's requests say: latency percentiles and throughput, from the recorded requests, and every
token's time (the per-token export).

The serving summary and the re-measure checkpoint read a cell's requests through
here. A percentile needs enough requests (``min_requests``); below that the
maximum stands in and is flagged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from llamabench.core.status import Status


def tail(values: Sequence[float], q: int, needed: int) -> tuple[float | None, bool]:
    """The q-th percentile, or the maximum where fewer than ``needed`` values exist (flagged True)."""
    if not values:
        return None, False
    if len(values) < needed:
        return float(np.max(values)), True
    return float(np.percentile(values, q)), False


def request_metrics(requests: Sequence[Mapping[str, Any]], wall_s: float, min_requests: Mapping[str, int],
                    ) -> dict[str, Any]:
    """TTFT, inter-token and end-to-end latency percentiles, per-request and aggregate tokens/s, and how much
    of the TTFT the server's own prompt time is."""
    ttft = [r["ttft_ms"] for r in requests]
    itl = [gap for r in requests for gap in r["itl_ms"]]
    e2e = [r["e2e_ms"] for r in requests]
    speeds = [(r["text_chunks"] - 1) / ((r["e2e_ms"] - r["ttft_ms"]) / 1000)
              for r in requests if r["text_chunks"] > 1 and r["e2e_ms"] > r["ttft_ms"]]
    found: dict[str, Any] = {}
    found["ttft_p90_ms"], found["p90_is_max"] = tail(ttft, 90, min_requests["p90"])
    found["ttft_p99_ms"], found["p99_is_max"] = tail(ttft, 99, min_requests["p99"])
    found["e2e_p99_ms"], _ = tail(e2e, 99, min_requests["p99"])
    found["itl_p99_ms"], _ = tail(itl, 99, min_requests["p99"])  # gaps are many; their count decides
    return {
        **found,
        "ttft_p50_ms": float(np.median(ttft)), "e2e_p50_ms": float(np.median(e2e)),
        "itl_p50_ms": float(np.median(itl)) if itl else None,
        "request_tps_p50": float(np.median(speeds)) if speeds else None,
        "aggregate_tps": sum(r["timings"]["predicted_n"] for r in requests) / wall_s,
        "server_prompt_ms_p50": float(np.median([r["timings"]["prompt_ms"] for r in requests])),
        "overhead_ms_p50": float(np.median([r["ttft_ms"] - r["timings"]["prompt_ms"] for r in requests])),
    }


def token_lines(cell: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One line per token of every measured request of a cell: the client's clock (ms after sending) and the
    server's (timings_per_token), with the request's send time in the level."""
    run = cell["serving"]
    if run["status"] != Status.OK:
        return []
    head = {"study": cell.get("study"), "build": cell["build"]["name"], "model": cell["model"]["name"],
            "cell": cell.get("base_cell", cell["cell"]), "round": cell.get("round", 1),
            "rate": cell["params"].get("rate")}
    return [{**head, "request": i, "sent_s": req.get("sent_s"), "token": j, "client_ms": t,
             "server_ms": (req.get("token_server_ms") or [None] * len(req["token_ms"]))[j]}
            for i, req in enumerate(run["requests"]) if "token_ms" in req
            for j, t in enumerate(req["token_ms"])]


def jsonl(tokens: Iterable[Mapping[str, Any]]) -> list[str]:
    """The per-token export's lines: one JSON object each (JSONL)."""
    return [json.dumps(token) for token in tokens]

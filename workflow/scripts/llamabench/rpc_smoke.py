"""The lab report's plain RPC step: one generation through a topology, with the one-shot tool and ``--rpc``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from llamabench import records, rpc_cell, rpc_workers, smoke
from llamabench.entry import announce_failure
from llamabench.rpc_workers import WorkerFailed

log = logging.getLogger(__name__)

# Bump when what an RPC smoke run does changes: every one runs again.
RULE_VERSION = 1


def rpc_smoke(smk: Any) -> None:
    """Rule ``rpc_smoke``: the smoke prompt through every worker of a topology (its first link rate)."""
    client = records.read(smk.input.build, "build")
    builds = {b["name"]: b for b in (records.read(p, "build") for p in smk.input.worker_builds)}
    topology = dict(smk.params.topology)
    cfg = smk.params.smoke
    log_path = Path(smk.log[0])
    workers = [rpc_cell.resolve(spec, builds) for spec in topology["workers"]]
    exe = Path(client["bin_dir"]) / client["binaries"]["completion"]
    cmd = smoke.command(exe, Path(smk.input.model), cfg["prompt"], cfg["n_predict"], cfg["seed"], cfg["threads"])
    fields: dict[str, Any] = {"topology": smk.wildcards.topology, "model": smk.wildcards.model, "workers": []}
    rate = topology["link_rates"][0]
    if any(w["kind"] == "netns" for w in workers) and (why := rpc_workers.netns_unavailable()):
        result = {"command": cmd, "status": "skipped", "error": why, "text": "", "timing_lines": [],
                  "tokens_per_second": {}}
    else:
        try:
            with rpc_workers.running(workers, rate, log_path) as running:
                fields["workers"] = [rpc_cell.worker_facts(w) for w in running]
                addresses = ",".join(w["address"] for w in running)
                result = smoke.generate([*cmd, "--rpc", addresses], log_path, timeout=smk.config["smoke"]["timeout"])
        except WorkerFailed as err:
            result = {"command": cmd, "status": "failed", "error": str(err), "text": "", "timing_lines": [],
                      "tokens_per_second": {}}
    announce_failure(f"RPC smoke run {smk.wildcards.topology}/{smk.wildcards.model}", result)
    records.write(smk.output[0], "rpc_smoke", {**fields, "link_rate": rate, "smoke": result})

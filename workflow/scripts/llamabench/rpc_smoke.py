"""The lab report's plain RPC step: one generation through a topology, with the one-shot tool and ``--rpc``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from llamabench.core import plan, records
from llamabench.core.status import Status
from llamabench.entry import announce_failure
from llamabench.measure import completion, machine_lock, rpc_workers
from llamabench.measure.rpc_workers import WorkerFailed

log = logging.getLogger(__name__)


def rpc_smoke(smk: Any) -> None:
    """Rule ``rpc_smoke``: the smoke prompt through every worker of a topology (its first link rate)."""
    client = records.read(smk.input.build, "build")
    builds = {b["name"]: b for b in (records.read(p, "build") for p in smk.input.worker_builds)}
    topology = dict(smk.params.topology)
    cfg = smk.params.smoke
    log_path = Path(smk.log[0])
    workers = [rpc_workers.resolve(spec, builds) for spec in topology["workers"]]
    exe = Path(client["bin_dir"]) / client["binaries"]["completion"]
    cmd = completion.command(exe, Path(smk.input.model), cfg["prompt"], cfg["n_predict"], cfg["seed"], cfg["threads"])
    fields: dict[str, Any] = {"topology": smk.wildcards.topology, "model": smk.wildcards.model, "workers": []}
    rate = topology["link_rates"][0]
    with machine_lock.held(f"RPC smoke run {smk.wildcards.topology}/{smk.wildcards.model}") as waited:
        result = generate_through(workers, rate, cmd, log_path, plan.of(smk.config).timeouts["rpc_smoke"], fields)
    announce_failure(f"RPC smoke run {smk.wildcards.topology}/{smk.wildcards.model}", result)
    records.write(smk.output[0], "rpc_smoke", {**fields, "link_rate": rate, "lock_wait_s": round(waited, 3),
                                               "smoke": result})


def generate_through(workers: list[dict[str, Any]], rate: str, cmd: list[str], log_path: Path, timeout: float,
        fields: dict[str, Any]) -> dict[str, Any]:
    """Start the workers, generate through them, stop them; a failure is recorded, not raised."""
    if why := rpc_workers.unavailable(workers):
        return {"command": cmd, "status": Status.SKIPPED, "error": why, "text": "", "timing_lines": [],
                "tokens_per_second": {}}
    try:
        with rpc_workers.running(workers, rate, log_path) as running:
            fields["workers"] = [rpc_workers.facts(w) for w in running]
            addresses = ",".join(w["address"] for w in running)
            return completion.generate([*cmd, "--rpc", addresses], log_path, timeout=timeout)
    except WorkerFailed as err:
        return {"command": cmd, "status": Status.FAILED, "error": str(err), "text": "", "timing_lines": [],
                "tokens_per_second": {}}

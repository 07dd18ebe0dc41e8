"""Rule ``rpc_cell``: one RPC cell, llama-bench on the client build through a topology's workers (or alone,
``-dev none``), recorded even when it fails or cannot run here (the measuring is measure/rpc_bench.py's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llamabench.core import backends, matrix, plan, records
from llamabench.entry import announce_failure
from llamabench.measure import machine_lock, processes, rpc_bench, rpc_workers


def rpc_cell(smk: Any) -> None:
    """Rule ``rpc_cell``: one RPC cell, recorded even when it fails or cannot run here."""
    the_plan = plan.of(smk.config)
    client = records.read(smk.input.build, "build")
    model = records.read(smk.input.model_manifest, "model")
    layers = model["gguf"].get("layers")
    worker_builds = {b["name"]: b for b in (records.read(p, "build") for p in smk.input.worker_builds)}
    params, rpc = dict(smk.params.cell), dict(smk.params.rpc)
    label = f"{smk.wildcards.build}/{smk.wildcards.model}/{smk.wildcards.cell}"
    workers = [rpc_workers.resolve(spec, worker_builds) for spec in rpc["workers"]]
    timeout = the_plan.timeouts["rpc_cell"]
    cell = the_plan.cell("rpc_cell", smk.wildcards.build, smk.wildcards.model, smk.wildcards.cell)
    head = records.cell_head(cell, the_plan.seed)
    processes.randomize_setup(head["setup_pad"])  # what the record says it ran with
    with machine_lock.held(f"RPC cell {label}") as waited:
        bin_dir = Path(client["bin_dir"])
        result = rpc_bench.measure(bin_dir / client["binaries"]["bench"], Path(smk.input.model),
                                   matrix.for_model(params, layers), workers, rpc, Path(smk.log[0]), timeout,
                                   bin_dir / client["binaries"]["completion"],
                                   skip=next(filter(None, map(backends.unusable, [client, *worker_builds.values()])),
                                             None),
                                   gpus=any(b.nvml for b in map(backends.of, [client["options"], *(
                                       w["options"] for w in worker_builds.values())]) if b),
                                   interval_s=the_plan.sample_interval_s)
    announce_failure(f"RPC cell {label}", result)
    records.write(smk.output[0], "rpc_cell", {
        **head,
        "params": params,
        "timeout_s": timeout,
        "lock_wait_s": round(waited, 3),
        "topology": rpc["topology"],
        "link_rate": rpc["link_rate"],
        "devices": rpc["devices"],
        "offload": matrix.placement(params, layers, rpc["devices"] != "none"),
        **records.cell_facts(client, model),
        "log": smk.log[0],
        "rpc": result,
    })

"""Rule ``serve_cell`` and its variants (``tune_serve_cell``, ``load_cell``): one round of one serving cell,
llama-server on loopback and a streaming client, measured and recorded even when it fails (the measuring is
measure/llama_server.py's). The variants differ only in which cell they measure, the plan's (``Plan.cell_of``),
and where it goes: a tuning study's candidate in the study's directory, a load sweep's level in the sweep's."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llamabench.core import axes, backends, files, matrix, plan, records, sessions
from llamabench.core.status import Status
from llamabench.derive import buffers, memory_fit
from llamabench.entry import announce_failure
from llamabench.measure import gpus, llama_server, machine_lock, memory_use, processes, system_state
from llamabench.core import model_shape

log = logging.getLogger(__name__)


def serve_cell(smk: Any) -> None:
    """One round of the serving cell the job's rule and wildcards name, recorded even when it fails."""
    the_plan = plan.of(smk.config)
    cell = the_plan.cell_of(smk.rule, smk.wildcards)
    measure(smk, the_plan, cell, the_plan.memory_settings(cell))


def measure(smk: Any, the_plan: plan.Plan, cell: plan.Cell, memory_settings: Mapping[str, Any]) -> None:
    """One round of serving ``cell`` (a scenario's, a tuning study's candidate, a load sweep's level) under the
    ``memory`` settings' fit decision, recorded even when it fails."""
    build = records.read(smk.input.build, "build")
    model = records.read(smk.input.model_manifest, "model")
    params = dict(smk.params.cell)
    label = f"{smk.wildcards.build}/{smk.wildcards.model}/{smk.wildcards.cell}"
    log.info("serving cell %s", label)
    if "server" not in build["binaries"]:
        raise ValueError(f"build {build['name']} has no llama-server")
    exe = Path(build["bin_dir"]) / build["binaries"]["server"]
    timeout = the_plan.timeouts["serve_cell"]
    backend = backends.of(build["options"])
    layers = model["gguf"].get("layers")
    offload = matrix.placement(params, layers, backends.offloads(build, params, axes.SERVING))
    head = records.cell_head(cell, the_plan.seed)
    processes.randomize_setup(head["setup_pad"])  # what the record says it ran with
    with machine_lock.held(f"serving cell {label}") as waited:
        free = gpus.free_mib(build)  # under the lock: what no other measurement holds
        runs = memory_fit.serve_runs(params, offload["offloaded_layers"] or 0,
                                     backends.split_devices(build, params, axes.SERVING, free), memory_use.cpu_flags(),
                                     gpus.tensor_limits(build))
        shape = model_shape.shape(Path(smk.input.model), model["sha256"])
        predicted, fit = memory_fit.gate(shape, runs, memory_settings,
                                         system_state.snapshot()["available_memory_mib"], free)
        # only the model's file tells a sliding window: said here, not measured as "reuse changes nothing"
        skip = backends.unusable(build, params, axes.SERVING) or sessions.reuse_problem(params, shape["sliding_window"])
        status = Status.SKIPPED
        if not skip and not fit["started"]:
            skip, status = memory_fit.reason(fit), Status.PREDICTED_OUT_OF_MEMORY
        result = llama_server.measure(exe, Path(smk.input.model), matrix.for_model(params, layers),
                                      Path(smk.log[0]), timeout=timeout, skip=skip, skip_status=status,
                                      gpus=bool(backend and backend.nvml), interval_s=the_plan.sample_interval_s,
                                      seed=f"{the_plan.seed}:{cell.base}", round_=cell.round)
    announce_failure(f"serving cell {label}", result)
    records.write(smk.output[0], "serve_cell", {
        **head,
        "params": params,
        "timeout_s": timeout,
        "lock_wait_s": round(waited, 3),
        **records.cell_facts(build, model),
        "log": smk.log[0],
        "memory": {"runs": runs, "predicted": predicted, "fit": fit,
                   "logged": buffers.logged(files.read_text(Path(smk.log[0]))) if skip is None else []},
        "serving": result,
    })

"""Rule ``bench_cell`` and its variants (``tune_cell``, ``history_cell``, ``bisect_cell``): one round of one
llama-bench cell, measured and recorded. The variants differ only in which cell they measure, the plan's
(``Plan.cell_of``), and where it goes: the same lock, record kind and statistics for all.

A cell's file always gets written, also when llama-bench fails: a failed
measurement is a result the report must show (with its reason), and the
aggregate must not be blocked by it. The raw llama-bench records are kept as
they came (measure/llama_bench.py), next to what explains them: the build and
model, the system state, the cell's place in its round's shuffled order, its
memory predicted and used.
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llamabench.core import axes, backends, files, matrix, options, plan, records
from llamabench.core.errors import Unsupported
from llamabench.core.status import Status
from llamabench.derive import buffers, memory_fit, samples
from llamabench.entry import announce_failure
from llamabench.measure import fit_params, gpus, llama_bench, machine_lock, memory_use, processes, system_state
from llamabench.core import model_shape

log = logging.getLogger(__name__)


def bench_cell(smk: Any) -> None:
    """One round of the cell the job's rule and wildcards name, recorded even when it fails."""
    the_plan = plan.of(smk.config)
    cell = the_plan.cell_of(smk.rule, smk.wildcards)
    measure(smk, the_plan, cell, the_plan.memory_settings(cell))


def measure(smk: Any, the_plan: plan.Plan, cell: plan.Cell, memory_settings: Mapping[str, Any]) -> None:
    """One round of ``cell`` (a grid cell, a tuning study's candidate, a commit's cell of a bisect or history
    study) under the ``memory`` settings' fit decision, recorded even when it fails."""
    build = records.read_build(smk.input.build)
    model = records.read(smk.input.model_manifest, "model")
    layers = model["gguf"].get("layers")
    params = dict(smk.params.cell)
    label = f"{build['name']}/{cell.model}/{cell.id}"
    log.info("cell %s", label)
    exe = Path(build["bin_dir"]) / build["binaries"]["bench"]
    timeout = the_plan.timeouts["bench_cell"]
    backend = backends.of(build["options"])
    offload = matrix.placement(params, layers, backends.offloads(build, params, axes.BENCHMARK))
    head = records.cell_head(cell, the_plan.seed)
    processes.randomize_setup(head["setup_pad"])  # what the record says it ran with
    with machine_lock.held(f"cell {label}") as waited:
        # Read under the lock: a GGUF file not yet in the cache takes seconds of CPU (the model rule fills it), and
        # a GPU's free memory is what no other measurement holds.
        state = system_state.snapshot()
        free = gpus.free_mib(build)
        runs = memory_fit.bench_runs(params, offload["offloaded_layers"] or 0,
                                     backends.split_devices(build, params, axes.BENCHMARK, free),
                                     memory_use.cpu_flags(), gpus.tensor_limits(build))
        predicted, fit = memory_fit.gate(model_shape.shape(Path(smk.input.model), model["sha256"]), runs,
                                         memory_settings, state["available_memory_mib"],
                                         free)
        try:
            if why := backends.unusable(build, params, axes.BENCHMARK):
                raise Unsupported(why)
            cmd = llama_bench.command(exe, Path(smk.input.model), matrix.for_model(params, layers), smk.params.delay)
        except Unsupported as err:
            log.warning("cell %s skipped: %s", label, err)
            result = llama_bench.skipped([str(exe), "-m", str(smk.input.model)], str(err))
        else:
            if fit["started"]:
                result = llama_bench.measure(cmd, Path(smk.log[0]), timeout=timeout,
                                             gpus=bool(backend and backend.nvml),
                                             interval_s=the_plan.sample_interval_s, what=f"cell {label}")
            else:
                log.warning("cell %s not started: %s", label, memory_fit.reason(fit))
                result = llama_bench.skipped(cmd, memory_fit.reason(fit), Status.PREDICTED_OUT_OF_MEMORY)
        projection = None
        if runs and smk.params.round == 1 and the_plan.memory["fit_params"] and result["status"] != Status.SKIPPED:
            projection = fit_params.project(fit_params.executable(build), Path(smk.input.model), params,
                                            max(run["n_ctx"] for run in runs),
                                            not options.flash_attn_off(params["flash_attn"]))
    announce_failure(f"cell {label}", result)
    if why := samples.busy(state):
        log.warning("cell %s ran on a busy machine: %s", label, why)
    records.write(smk.output[0], "bench_cell", {
        **head,
        "params": params,
        "offload": offload,
        "notes": [note for note in [options.slow_kv_path(build["options"], params)] if note],
        "delay": smk.params.delay,
        "timeout_s": timeout,
        **memlock(params),
        "lock_wait_s": round(waited, 3),
        "system": state,
        **records.cell_facts(build, model),
        "log": smk.log[0],
        "memory": {"runs": runs, "predicted": predicted, "fit": fit, "fit_params": projection,
                   "logged": buffers.logged(files.read_text(Path(smk.log[0])))},
        "llama_bench": result,
    })


def memlock(params: dict[str, Any]) -> dict[str, list[int]]:
    """What an mlock cell may lock (RLIMIT_MEMLOCK, soft and hard, -1 unlimited): too low a limit fails it."""
    if "mlock" not in str(axes.value(params, "load_mode")):
        return {}
    return {"memlock_limit": list(resource.getrlimit(resource.RLIMIT_MEMLOCK))}

"""Rule ``bench_cell``: one round of one benchmark cell, llama-bench with exactly the cell's parameters.

A cell's file always gets written, also when llama-bench fails: a failed
measurement is a result the report must show (with its reason), and the
aggregate must not be blocked by it. The raw llama-bench records are kept as
they came (measure/llama_bench.py), next to what explains them: the build and
model, the system state, the cell's place in its round's shuffled order.
"""

from __future__ import annotations

import logging
import resource
from pathlib import Path
from typing import Any

from llamabench.core import axes, matrix, options, plan, records
from llamabench.core.errors import Unsupported
from llamabench.derive import samples
from llamabench.entry import announce_failure
from llamabench.measure import gpus, llama_bench, machine_lock, system_state

log = logging.getLogger(__name__)


def bench_cell(smk: Any) -> None:
    """Rule ``bench_cell``: one round of one parameter set, recorded even when it fails."""
    the_plan = plan.of(smk.config)
    cell = the_plan.cell("bench_cell", smk.wildcards.build, smk.wildcards.model, smk.wildcards.cell)
    build = records.read(smk.input.build, "build")
    model = records.read(smk.input.model_manifest, "model")
    layers = model["gguf"].get("layers")
    params = dict(smk.params.cell)
    label = f"{smk.wildcards.build}/{smk.wildcards.model}/{smk.wildcards.cell}"
    log.info("cell %s", label)
    exe = Path(build["bin_dir"]) / build["binaries"]["bench"]
    timeout = the_plan.timeouts["bench_cell"]
    gpu_run = options.uses_gpu(build["options"])
    with machine_lock.held(f"cell {label}") as waited:
        state = system_state.snapshot()
        try:
            if why := gpus.skip_reason(smk.input):
                raise Unsupported(why)
            cmd = llama_bench.command(exe, Path(smk.input.model), matrix.for_model(params, layers), smk.params.delay)
        except Unsupported as err:
            log.warning("cell %s skipped: %s", label, err)
            result = llama_bench.skipped([str(exe), "-m", str(smk.input.model)], str(err))
        else:
            result = llama_bench.measure(cmd, Path(smk.log[0]), timeout=timeout, gpus=gpu_run,
                                         interval_s=the_plan.sample_interval_s)
    announce_failure(f"cell {label}", result)
    if why := samples.busy(state):
        log.warning("cell %s ran on a busy machine: %s", label, why)
    records.write(smk.output[0], "bench_cell", {
        "cell": cell.id,
        "base_cell": smk.params.base_cell,
        "round": smk.params.round,
        "seed": the_plan.seed,
        "round_position": cell.position,
        "params": params,
        "offload": matrix.placement(params, layers, gpu_run),
        "notes": [note for note in [options.slow_kv_path(build["options"], params)] if note],
        "delay": smk.params.delay,
        "timeout_s": timeout,
        **memlock(params),
        "lock_wait_s": round(waited, 3),
        "system": state,
        **records.cell_facts(build, model),
        "log": smk.log[0],
        "llama_bench": result,
    })


def memlock(params: dict[str, Any]) -> dict[str, list[int]]:
    """What an mlock cell may lock (RLIMIT_MEMLOCK, soft and hard, -1 unlimited): too low a limit fails it."""
    if "mlock" not in str(axes.value(params, "load_mode")):
        return {}
    return {"memlock_limit": list(resource.getrlimit(resource.RLIMIT_MEMLOCK))}

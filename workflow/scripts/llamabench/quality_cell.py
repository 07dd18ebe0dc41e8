"""Rule ``quality_cell`` and its variant ``quality_reference``: llama-perplexity over the quality text.

The reference (the benchmark defaults' quality settings) scores the text and keeps every scored token's
distribution (a temp file: Snakemake deletes it once no quality cell still needs it); each cell runs with its own
settings against that file and records its KL divergence, same-top-token share and perplexity ratio with
intervals over chunks (derive/quality.py). The record is written also when the run fails or cannot run here, with
the reason. llama-perplexity's log-softmax uses all but one hardware thread whatever ``-t`` says, so both hold
the machine lock like any measurement.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from llamabench.core import axes, backends, matrix, plan, quality, records
from llamabench.core.errors import Unsupported
from llamabench.core.status import Status
from llamabench.derive import quality as cost
from llamabench.entry import announce_failure
from llamabench.measure import machine_lock, perplexity, processes

log = logging.getLogger(__name__)

SYNTHETIC_LABEL = "numerical fidelity only: a synthetic random-weight model's KLD says nothing about output quality"


def quality_cell(smk: Any) -> None:
    """The reference's or one setting's llama-perplexity run, recorded even when it fails."""
    the_plan = plan.of(smk.config)
    reference = smk.rule == "quality_reference"
    cell = the_plan.quality_cell(smk.wildcards.build, smk.wildcards.model,
                                 quality.REFERENCE if reference else smk.wildcards.cell)
    spec = the_plan.quality_spec
    build = records.read_build(smk.input.build)
    model = records.read(smk.input.model_manifest, "model")
    text = records.read(smk.input.text, "quality_text")
    params = dict(smk.params.cell)
    label = f"{build['name']}/{cell.model}/{cell.id}"
    head = {"build_name": cell.build, "model_name": cell.model, "cell": cell.id, "reference": reference,
            "reference_model": cell.against.model,
            "params": params, "ctx_size": smk.params.ctx_size, "chunks": smk.params.chunks,
            "text_sha256": text["sha256"], "threads": spec["threads"], "timeout_s": spec["timeout"],
            "label": SYNTHETIC_LABEL if model["model_kind"] == "synthetic" else None,
            **records.cell_facts(build, model), "log": smk.log[0]}
    waited, result = 0.0, None
    try:
        result, cmd = None, []
        if why := backends.unusable(build):
            raise Unsupported(why)
        if "perplexity" not in build["binaries"]:
            raise Unsupported(f"build '{build['name']}' has no llama-perplexity: quality cells need it")
        exe = Path(build["bin_dir"]) / build["binaries"]["perplexity"]
        settings = axes.arguments(matrix.for_model(params, model["gguf"].get("layers")), axes.QUALITY,
                                  axes.LLAMA_PERPLEXITY, processes.help_text(exe))
    except Unsupported as err:
        result = {"status": Status.SKIPPED, "error": str(err), "command": []}
    if result is None and not reference:
        ref = records.read(smk.input.reference, "quality_cell")
        if ref["status"] != Status.OK:
            result = {"status": Status.FAILED, "command": [],
                      "error": f"its reference did not measure ({ref['status']}: {ref['error']})"}
    if result is None:
        if reference:
            cmd = perplexity.reference_command(exe, Path(smk.input.model), Path(smk.input.text_file),
                                               Path(smk.output.logits), smk.params.ctx_size, smk.params.chunks,
                                               spec["threads"], settings)
        else:
            cmd = perplexity.candidate_command(exe, Path(smk.input.model), Path(smk.input.logits),
                                               smk.params.ctx_size, smk.params.chunks, spec["threads"], settings)
        with machine_lock.held(f"quality {label}") as waited:
            start = time.time()
            output, error = perplexity.run(cmd, Path(smk.log[0]), spec["timeout"])
            end = time.time()
        parse = perplexity.parse_reference if reference else perplexity.parse_candidate
        result = {**perplexity.measured(output, error, parse, smk.params.chunks), "command": cmd,
                  "start_epoch": start, "end_epoch": end, "wall_s": round(end - start, 3)}
        if not reference and result["status"] == Status.OK:
            result = {**result, **cost.cost(result, ref["ppl_cumulative"])}
    if reference:
        logits = Path(smk.output.logits)
        result["logits_bytes"] = logits.stat().st_size if logits.exists() else 0
        if not logits.exists():
            logits.write_text("")  # the run failed: its cells read the reference's status, not this file
    announce_failure(f"quality {label}", result)
    records.write(smk.output.record, "quality_cell", {**head, "lock_wait_s": round(waited, 3), **result})

"""Rule ``quality_cell`` and its variant ``quality_reference``: llama-perplexity over the quality text.

The reference (the benchmark defaults' quality settings) scores the text and keeps every scored token's
distribution beside its record (``reference.kld``: not an output, so Snakemake never reruns a cell for it;
quality_summary deletes it once every cell has read it, and a cell that finds it gone makes it again by the
reference's recorded command, checked against the record); each cell runs with its own settings against that
file and records its KL divergence, same-top-token share and perplexity ratio with intervals over chunks
(derive/quality.py). The record is written also when the run fails or cannot run here, with
the reason. llama-perplexity's log-softmax uses all but one hardware thread whatever ``-t`` says, so both hold
the machine lock like any measurement.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from llamabench.core import axes, backends, files, layout, matrix, model_shape, plan, quality, records
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
        if why := backends.unusable(build, params, axes.QUALITY):
            raise Unsupported(why)
        tool = records.read(smk.input.tool, "perplexity_build")
        if tool["binary"] is None:
            raise Unsupported(tool["error"])
        exe = Path(tool["binary"])
        settings = axes.arguments(matrix.for_model(params, model["gguf"].get("layers")), axes.QUALITY,
                                  axes.LLAMA_PERPLEXITY, processes.help_text(exe))
    except Unsupported as err:
        result = {"status": Status.SKIPPED, "error": str(err), "command": []}
    if result is None and not reference:
        ref = records.read(smk.input.reference, "quality_cell")
        source = records.read(smk.input.reference_manifest, "model")
        why = quality.vocabulary_problem(
            cell.model, the_plan.models[cell.model],
            model_shape.shape(Path(smk.input.model), model["sha256"]).get("vocab"),
            model_shape.shape(Path(smk.input.reference_model), source["sha256"]).get("vocab"))
        if why:
            result = {"status": Status.FAILED, "command": [], "error": why}
        elif ref["status"] != Status.OK:
            result = {"status": Status.FAILED, "command": [],
                      "error": f"its reference did not measure ({ref['status']}: {ref['error']})"}
    if result is None:
        logits = Path(layout.path("quality_logits", build=cell.against.build, model=cell.against.model))
        with machine_lock.held(f"quality {label}") as waited:
            if reference:
                cmd = perplexity.reference_command(exe, Path(smk.input.model), Path(smk.input.text_file), logits,
                                                   smk.params.ctx_size, smk.params.chunks, spec["threads"], settings)
                result = make_logits(cmd, logits, Path(smk.log[0]), spec["timeout"], smk.params.chunks)
            elif why := (None if logits.exists() else
                         remake_logits(ref, logits, Path(smk.log[0]), spec["timeout"], smk.params.chunks)):
                result = {"status": Status.FAILED, "command": [], "error": why}
            else:
                cmd = perplexity.candidate_command(exe, Path(smk.input.model), logits, smk.params.ctx_size,
                                                   smk.params.chunks, spec["threads"], settings)
                result = timed(cmd, Path(smk.log[0]), spec["timeout"], perplexity.parse_candidate, smk.params.chunks)
                if result["status"] == Status.OK:
                    result = {**result, **cost.cost(result, ref["ppl_cumulative"])}
    announce_failure(f"quality {label}", result)
    records.write(smk.output.record, "quality_cell", {**head, "lock_wait_s": round(waited, 3), **result})


def timed(cmd: list[str], log_path: Path, timeout: float, parse: Any, chunks: int) -> dict[str, Any]:
    """One llama-perplexity run's record fields: what it printed, parsed, and when it ran."""
    start = time.time()
    output, error = perplexity.run(cmd, log_path, timeout)
    end = time.time()
    return {**perplexity.measured(output, error, parse, chunks), "command": cmd, "start_epoch": start,
            "end_epoch": end, "wall_s": round(end - start, 3)}


def _part(logits: Path) -> Path:
    return logits.with_name(f"{logits.name}.part")


def make_logits(cmd: list[str], logits: Path, log_path: Path, timeout: float, chunks: int) -> dict[str, Any]:
    """The reference's run: its logits written under another name and put in place only when the run printed
    every chunk, so a cell never reads a half-written file."""
    part = _part(logits)
    ran = [part if word == str(logits) else word for word in cmd]
    result = {**timed([str(word) for word in ran], log_path, timeout, perplexity.parse_reference, chunks),
              "command": [str(word) for word in cmd]}
    if result["status"] == Status.OK and part.exists():
        result["logits_bytes"] = part.stat().st_size
        part.rename(logits)
    files.remove(part)
    return result


def remake_logits(reference: dict[str, Any], logits: Path, log_path: Path, timeout: float, chunks: int,
                  ) -> str | None:
    """The reference's logits made again by its recorded command (deleted once every cell of a run had read
    them: 512 KiB per token at a 262k vocabulary), checked against its record; why not, or None."""
    made = make_logits(reference["command"], logits, log_path, timeout, chunks)
    if made["status"] != Status.OK:
        files.remove(logits)
        return f"its reference's logits could not be made again: {made['error']}"
    if made["ppl_cumulative"] != reference["ppl_cumulative"]:
        files.remove(logits)
        return (f"its reference's logits made again printed perplexities {made['ppl_cumulative']}, not its "
                f"record's {reference['ppl_cumulative']}: measure the reference again (snakemake -R "
                "quality_reference)")
    return None

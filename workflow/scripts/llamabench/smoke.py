"""Rule ``smoke``: the lab report's "run the model" step, one fixed prompt so a user sees the model answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llamabench.core import plan, records
from llamabench.entry import announce_failure
from llamabench.measure import completion, machine_lock


def smoke(smk: Any) -> None:
    """Rule ``smoke``: one greedy generation per build and model, recorded even when it fails."""
    build = records.read(smk.input.build, "build")
    records.read(smk.input.model_manifest, "model")
    exe = Path(build["bin_dir"]) / build["binaries"]["completion"]
    cfg = smk.params.smoke
    cmd = completion.command(exe, Path(smk.input.model), cfg["prompt"], cfg["n_predict"], cfg["seed"],
                             cfg["threads"])
    label = f"{smk.wildcards.build}/{smk.wildcards.model}"
    with machine_lock.held(f"smoke run {label}") as waited:
        result = completion.generate(cmd, Path(smk.log[0]), timeout=plan.of(smk.config).timeouts["smoke"])
    announce_failure(f"smoke run {label}", result)
    records.write(smk.output[0], "smoke", {"build": smk.wildcards.build, "model": smk.wildcards.model,
                                           "lock_wait_s": round(waited, 3), **result})

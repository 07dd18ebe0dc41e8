"""Rule ``build``: one build variant of a configured source (prepare/builds.py compiles it through the cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llamabench.core import history, records
from llamabench.prepare import builds


def build(smk: Any) -> None:
    """Rule ``build``: binaries at ``results/builds/<build>/bin`` and the build record beside them."""
    src = records.read(smk.input.source, "source")
    name = smk.wildcards.build
    node = records.read(smk.input.hardware, "hardware") if "hardware" in smk.input.keys() else None
    options = builds.cuda_architectures(list(smk.params.cmake_options), node, name)
    entry = builds.cached_build(src, name, options, smk.threads)
    fields = builds.installed(entry, Path(smk.output.bin), name, smk.params.source, smk.params.cmake_options, src,
                              dict(smk.params.environment), smk.params.software_device)
    # This build replaces any of another commit: keep that one's results (history.py).
    history.archive(Path(smk.output.manifest).parents[2], name, src["commit"])
    records.write(smk.output.manifest, "build", fields)

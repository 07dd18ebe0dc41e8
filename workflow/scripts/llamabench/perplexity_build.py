"""Rule ``perplexity_build``: the llama-perplexity a build's quality cells run.

A build compiled before llama-perplexity joined the binaries (prepare/builds.py ``ROLES``) is a cache hit without
it; rather than a new build version (which would build every tree again and re-measure every cell), the missing
binary is compiled once beside the build's cache entry, with the same options (``builds.added_roles``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llamabench.core import records
from llamabench.core.errors import UserError
from llamabench.prepare import builds


def perplexity_build(smk: Any) -> None:
    build = records.read_build(smk.input.build)
    found, error, added = None, None, False
    if "perplexity" in build["binaries"]:
        found = Path(build["bin_dir"]) / build["binaries"]["perplexity"]
    else:
        try:
            found = builds.added_roles(build, records.read(smk.input.source, "source"), frozenset({"perplexity"}),
                                       smk.threads)["perplexity"]
            added = True
        except UserError as err:  # a tree without the target: its quality cells say so
            error = f"build '{build['name']}' has no llama-perplexity, and it could not be compiled: {err}"
    records.write(smk.output[0], "perplexity_build", {"build": build["name"], "binary": str(found) if found else None,
                                                      "added": added, "error": error})

"""Rule ``build``: one build variant of a configured source (prepare/builds.py compiles it through the cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llamabench.core import history, records
from llamabench.core import options as cmake
from llamabench.prepare import builds


def build(smk: Any) -> None:
    """Rule ``build``: binaries at ``results/builds/<build>/bin`` and the build record beside them."""
    src = records.read(smk.input.source, "source")
    name = smk.wildcards.build
    node = records.read(smk.input.hardware, "hardware") if "hardware" in smk.input.keys() else None
    options = builds.cuda_architectures(list(smk.params.cmake_options), node, name)
    entry = builds.cached_build(src, name, options, smk.threads)
    bin_dir = Path(smk.output.bin)
    builds.install(entry, bin_dir)
    # This build replaces any of another commit: keep that one's results (history.py).
    history.archive(Path(smk.output.manifest).parents[2], name, src["commit"])
    records.write(smk.output.manifest, "build", {
        "name": name,
        "source": smk.params.source,
        "requested_options": list(smk.params.cmake_options),
        "commit": src["commit"],
        "build_number": src["build_number"],
        "source_kind": src["source_kind"],
        "bin_dir": str(bin_dir),
        "devices": builds.list_devices(bin_dir, entry["binaries"]),
        "flash_attn_kv_pairs": cmake.flash_attn_kv_pairs(entry["options"]),
        **{key: entry[key] for key in ("options", "compiler", "cmake", "nvcc", "ccache", "cache_key", "cache_dir",
                                       "cache_hit", "binaries")},
    })

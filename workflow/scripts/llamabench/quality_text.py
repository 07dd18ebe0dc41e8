"""Rule ``quality_text``: the fixed text every quality cell scores, fingerprinted.

A user's file is taken as it is; by default the text is the source tree's own documentation (``docs/**/*.md``,
sorted by path, joined), which every llama.cpp tree carries, so an offline run has one and two runs of the same
tree read the same bytes. The record names exactly what was read: its origin and sha256.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llamabench.core import files, records

DOCS = "docs/**/*.md"


def quality_text(smk: Any) -> None:
    """Write the text and its record."""
    if smk.params.text is not None:
        given = Path(smk.params.text).expanduser()
        text, origin = given.read_bytes(), {"file": str(given.resolve())}
    else:
        source = records.read(smk.input.source, "source")
        tree = Path(source["source_dir"])
        found = sorted(path for path in tree.glob(DOCS) if path.is_file())
        text = b"\n".join(path.read_bytes() for path in found)
        origin = {"source": smk.params.source, "commit": source.get("commit"), "glob": DOCS, "files": len(found)}
    target = Path(smk.output.text)
    with files.atomic_path(target) as tmp:
        tmp.write_bytes(text)
    records.write(smk.output.record, "quality_text", {"origin": origin, "bytes": len(text),
                                                       "sha256": files.sha256_file(target)})

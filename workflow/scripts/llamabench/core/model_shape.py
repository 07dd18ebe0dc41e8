"""A GGUF model's memory shape: what ``derive/memory.py`` predicts from, read once per file and cached.

The hyper-parameters and every tensor's type, bytes, file offset, rows and layer. Reading a
262k-token vocabulary takes ~10 s, so shapes are remembered by the file's sha256 in the
build cache (``gguf-metadata/``), keyed by ``SHAPE_VERSION`` too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llamabench.core import files

# Bump when what ``shape_of`` extracts changes: the cached shapes are keyed by it.
SHAPE_VERSION = 2


def shape(path: Path, digest: str, cache: Path | None = None) -> dict[str, Any]:
    """The memory shape of a GGUF file, remembered by its sha256 (reading a 262k-token vocabulary takes ~10 s)."""
    entry = (cache or files.cache_root()) / "gguf-metadata" / f"{digest}-memory-v{SHAPE_VERSION}.json"
    return files.cached_json(entry, lambda: shape_of(path))


def known(digest: str | None, cache: Path | None = None) -> dict[str, Any] | None:
    """The shape of the file of this sha256 where one was read before (the plan may consult it before any job),
    else None."""
    if not digest:
        return None
    entry = (cache or files.cache_root()) / "gguf-metadata" / f"{digest}-memory-v{SHAPE_VERSION}.json"
    return json.loads(entry.read_text()) if entry.is_file() else None


def shape_of(path: Path) -> dict[str, Any]:
    """Hyper-parameters and every tensor's type, bytes, file offset, rows and layer: what the prediction
    needs."""
    from gguf import GGUFReader

    reader = GGUFReader(path)

    def field(key: str) -> Any:
        item = reader.fields.get(key)
        return item.contents() if item is not None else None

    arch = field("general.architecture")
    heads = field(f"{arch}.attention.head_count")
    embedding = field(f"{arch}.embedding_length")
    head_k = field(f"{arch}.attention.key_length") or (embedding // heads if embedding and heads else None)
    tensors = [{"name": t.name, "type": t.tensor_type.name, "bytes": int(t.n_bytes), "offset": int(t.data_offset),
                "rows": int(t.shape[1]) if len(t.shape) > 1 else 1,
                "layer": int(t.name.split(".")[1]) if t.name.startswith("blk.") else None}
               for t in reader.tensors]
    embd = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    return {
        "architecture": arch,
        "layers": field(f"{arch}.block_count"),
        "embedding": embedding,
        "ffn": field(f"{arch}.feed_forward_length"),
        "heads": heads,
        "kv_heads": field(f"{arch}.attention.head_count_kv") or heads,
        "head_k": head_k,
        "head_v": field(f"{arch}.attention.value_length") or head_k,
        "vocab": int(embd.shape[1]) if embd is not None else None,
        "sliding_window": field(f"{arch}.attention.sliding_window"),
        "file_bytes": path.stat().st_size,
        "tensors": tensors,
    }

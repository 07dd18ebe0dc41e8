"""Named shapes of synthetic models (published hyper-parameters), checked before any job.

The generator (prepare/synthetic.py) writes the file; the config check and the
plan need only the shape and the generator's version, which is part of every
synthetic model's cache key.
"""

from __future__ import annotations

from typing import Any

from llamabench.core.errors import UserError

# Bump when the file this module writes changes: it is part of the cache key of every synthetic model.
GENERATOR_VERSION = 1

# Published hyper-parameters (the models' config.json), by the names users know them by.
SHAPES: dict[str, dict[str, Any]] = {
    "gemma3-270m": {"architecture": "gemma3", "layers": 18, "embedding": 640, "heads": 4, "kv_heads": 1,
                    "head_dim": 256, "ffn": 2048, "vocab": 262144, "context": 32768, "tied": True},
    "llama-3.2-1b": {"architecture": "llama", "layers": 16, "embedding": 2048, "heads": 32, "kv_heads": 8,
                     "head_dim": 64, "ffn": 8192, "vocab": 128256, "context": 131072, "tied": True},
    "llama-3.2-3b": {"architecture": "llama", "layers": 28, "embedding": 3072, "heads": 24, "kv_heads": 8,
                     "head_dim": 128, "ffn": 8192, "vocab": 128256, "context": 131072, "tied": True},
    "llama-3.1-8b": {"architecture": "llama", "layers": 32, "embedding": 4096, "heads": 32, "kv_heads": 8,
                     "head_dim": 128, "ffn": 14336, "vocab": 128256, "context": 131072, "tied": False},
    "qwen2.5-0.5b": {"architecture": "qwen2", "layers": 24, "embedding": 896, "heads": 14, "kv_heads": 2,
                     "head_dim": 64, "ffn": 4864, "vocab": 151936, "context": 32768, "tied": True},
    "qwen3-0.6b": {"architecture": "qwen3", "layers": 28, "embedding": 1024, "heads": 16, "kv_heads": 8,
                   "head_dim": 128, "ffn": 3072, "vocab": 151936, "context": 40960, "tied": True},
}
SHAPE_KEYS = ("architecture", "layers", "embedding", "heads", "kv_heads", "head_dim", "ffn", "vocab", "context",
              "tied")
ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3")


def shape_of(cfg: dict[str, Any]) -> dict[str, Any]:
    """The shape a synthetic model entry asks for: a named shape, overridden key by key."""
    base = dict(SHAPES[cfg["shape"]]) if "shape" in cfg else {}
    shape = {**base, **{key: cfg[key] for key in SHAPE_KEYS if key in cfg}}
    missing = [key for key in SHAPE_KEYS if key not in shape and key not in ("head_dim", "tied")]
    if missing:
        raise UserError(f"a synthetic model needs shape: <name> or {', '.join(missing)}")
    shape.setdefault("head_dim", shape["embedding"] // shape["heads"])
    shape.setdefault("tied", True)
    if shape["architecture"] not in ARCHITECTURES:
        raise UserError(f"synthetic architecture {shape['architecture']!r}: one of {', '.join(ARCHITECTURES)}")
    if shape["architecture"] == "gemma3" and shape["layers"] < 6:
        # Every sixth Gemma 3 layer attends globally; with none, mid-2025 trees crash (SIGSEGV) at warm-up.
        raise UserError("a synthetic gemma3 needs at least 6 layers (one global-attention layer)")
    if shape["vocab"] < 259 + 1:
        raise UserError("a synthetic vocabulary needs at least 260 tokens (3 special, 256 bytes, 1 piece)")
    return shape

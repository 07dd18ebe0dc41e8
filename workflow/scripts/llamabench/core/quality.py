"""Which quality cells a run measures: every setting that changes what the model computes, against a reference.

A quality cell is llama-perplexity's KL divergence of one build and model run with some settings from the same
build and model run with the reference settings (the benchmark defaults' quality axes: f16 K/V, the defaults'
offload and flash attention), over one fixed text (measure/perplexity.py, derive/quality.py). Which settings
change the numerics is a property of each axis (``Axis.quality`` in core/axes.py), so the cells follow from the
benchmark grid, the tuning studies' candidates and ``quality.cells``: a cell is planned wherever one of them sets
a quality axis to something other than the reference's. Threads and batch sizes change speed, never these cells.
Quality is measured once per setting (the numerics are deterministic on one machine), not in rounds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from llamabench.core import axes, backends, layout, matrix

REFERENCE = "reference"
# V cache types llama.cpp keeps without flash attention; any other (a quantised V) needs it.
PLAIN_V = ("f16", "bf16", "f32")
# llama-perplexity's base file: two bytes per vocabulary entry per scored token.
LOGIT_BYTES = 2


@dataclass(frozen=True)
class Cell:
    """One quality measurement: a build and model with ``params`` (quality axes only) against its reference."""

    build: str
    model: str
    id: str  # REFERENCE for the reference itself
    params: Mapping[str, Any]
    speed_cells: tuple[str, ...] = ()  # benchmark cells (base ids) that measure these settings' speed
    # the model whose reference it is measured against: its own, or for a rung of a quantisation ladder (a
    # quantized model) the model it was quantised from
    reference_model: str = ""

    @property
    def against(self) -> "Cell":
        """The reference cell (by key) it is measured against."""
        return Cell(self.build, self.reference_model or self.model, REFERENCE, MappingProxyType({}))

    @property
    def reference(self) -> bool:
        return self.id == REFERENCE

    @property
    def path(self) -> str:
        if self.reference:
            return layout.path("quality_reference", build=self.build, model=self.model)
        return layout.path("quality_cell", build=self.build, model=self.model, cell=self.id)


def settings(params: Mapping[str, Any], gpu: bool = True,
             reference: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A cell's quality axes (in id order; optional ones only where set), of any kind of cell: an axis its kind
    leaves out (a serving cell's K/V type at its default) is at its default. On a build without a GPU
    (``gpu`` false) where layers go changes nothing: those axes take the ``reference``'s values."""
    found = {name: params.get(name, axes.AXES[name].default) for name in axes.names(axes.QUALITY)}
    if not gpu and reference is not None:
        found |= {name: axes.value(reference, name) for name in found if axes.AXES[name].quality == axes.ON_GPU}
    return axes.normalize(found, axes.QUALITY)


def reference(bench: Mapping[str, Any]) -> dict[str, Any]:
    """The reference settings: the benchmark defaults' quality axes."""
    return settings(matrix.baseline(bench))


def budget(study: Mapping[str, Any]) -> dict[str, float]:
    """A tuning study's quality budget: its limits that are set (empty: none)."""
    return {name: value for name, value in (study.get("quality") or {}).items() if value is not None}


def flash_attention_problem(params: Mapping[str, Any]) -> str | None:
    """Why llama.cpp would refuse these settings: a quantised V cache needs flash attention."""
    v, fa = axes.value(params, "cache_type_v"), axes.canonical("flash_attn", axes.value(params, "flash_attn"))
    if v is not None and v not in PLAIN_V and fa in ("off", 0):
        return f"cache_type_v {v} with flash_attn {fa}: llama.cpp quantises the V cache only with flash attention " \
               "(set flash_attn on or auto)"
    return None


def _speed_of(base: Mapping[str, Any], grid: Mapping[str, Mapping[str, Any]], wanted: Mapping[str, Any],
              gpu: bool) -> tuple[str, ...]:
    """The grid cells that measure ``wanted``'s speed: its quality settings, every other setting and the work at
    the defaults' (so their comparison with the defaults is what these settings cost in speed)."""
    others = [name for name in axes.names(axes.BENCHMARK) if name not in axes.names(axes.QUALITY)]
    return tuple(cid for cid, params in grid.items() if settings(params, gpu, base) == wanted
                 and all(axes.value(params, name) == axes.value(base, name) for name in others))


def cells(config: Mapping[str, Any], grids: Mapping[tuple[str, str], Mapping[str, Mapping[str, Any]]],
          candidates: Iterable[tuple[str, str, Mapping[str, Any], bool]]) -> dict[tuple[str, str, str], Cell]:
    """Every quality cell of the run, references included: per (build, model) of ``quality.builds`` x
    ``quality.models``, each distinct quality setting of its benchmark cells (``grids``), of the tuning candidates
    measured on it and of ``quality.cells``, apart from the reference's; and on any build and model a study with a
    quality budget races on, its candidates' (``candidates``: build, model, params, whether the study has a
    budget). A (build, model) with none gets no reference either. A rung of a quantisation ladder (a ``quantized``
    model), or a model that names its ``quality_reference`` (a higher-precision GGUF of the same weights), is
    measured against that other model's reference, its reference settings too (what its quantisation costs)."""
    spec, bench = config["quality"], config["benchmark"]
    if not spec["enabled"]:
        return {}
    base = matrix.baseline(bench)
    gpus = {name: backends.of(build["cmake_options"]) is not None for name, build in config["builds"].items()}
    ref = reference(bench)
    builds = spec["builds"] or bench["builds"] or list(config["builds"])
    models = spec["models"] or bench["models"] or list(config["models"])
    pairs = dict.fromkeys(itertools.product(builds, models), False)
    extra = [{**base, **axes.canonical_partial(partial)} for partial in spec["cells"]]
    tuned: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for build, model, params, budgeted in candidates:
        if budgeted or (build, model) in pairs:
            tuned.setdefault((build, model), []).append({**base, **params})
            pairs.setdefault((build, model), True)
    found: dict[tuple[str, str, str], Cell] = {}
    for (build, model), only_tuned in pairs.items():
        grid = grids.get((build, model), {})
        gpu = gpus.get(build, False)
        spec_model = config["models"][model]
        source = spec_model.get("from") if spec_model["kind"] == "quantized" else spec_model.get("quality_reference")
        wanted = [settings(params, gpu, base) for params in
                  tuned.get((build, model), []) + ([] if only_tuned else [*grid.values(), *extra])]
        wanted += [ref] if source and not only_tuned else []
        distinct = {matrix.cell_id(params, axes.QUALITY): params for params in wanted if source or params != ref}
        if not distinct:
            continue
        against = source or model
        found.setdefault((build, against, REFERENCE), Cell(build, against, REFERENCE, MappingProxyType(ref),
                                                           _speed_of(base, grids.get((build, against), {}), ref, gpu)))
        for cid, params in sorted(distinct.items()):
            found[(build, model, cid)] = Cell(build, model, cid, MappingProxyType(params),
                                              _speed_of(base, grid, params, gpu), against)
    return found


def cell_id(params: Mapping[str, Any], bench: Mapping[str, Any], gpu: bool, ladder: bool = False) -> str:
    """The quality cell that measures a cell's settings on a build (with a GPU or not): REFERENCE where they are
    the reference's, unless the model is a ladder's rung (``ladder``: measured against its source's reference)."""
    base = matrix.baseline(bench)
    found = settings(params, gpu, base)
    return REFERENCE if found == reference(bench) and not ladder else matrix.cell_id(found, axes.QUALITY)


def vocabulary_problem(model: str, spec: Mapping[str, Any], vocab: int | None, reference_vocab: int | None,
                       ) -> str | None:
    """Why ``model`` cannot be measured against its source's reference: another vocabulary (KL divergence compares
    distributions over the same tokens; llama-perplexity would only log it). ``spec``: the model's config."""
    if vocab is None or reference_vocab is None or vocab == reference_vocab:
        return None
    key = "from" if spec.get("kind") == "quantized" else "quality_reference"
    return (f"models.{model}.{key}: {spec[key]} has a vocabulary of {reference_vocab} tokens and {model} of {vocab}: "
            "a KL divergence needs the same tokens (name a GGUF of the same weights)")


def logits_bytes(vocabulary: int, ctx_size: int, chunks: int) -> int:
    """About the size of a reference's base file: each chunk scores the second half of its context but its first
    token (measured: 266 MB at 262,144 entries, -c 256, 4 chunks)."""
    return LOGIT_BYTES * vocabulary * (ctx_size - ctx_size // 2 - 1) * chunks

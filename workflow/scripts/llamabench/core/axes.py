"""The one registry of axes: every parameter a cell can vary, defined once.

An axis is a setting of llama-bench or llama-server (threads, batch size, how
the model is loaded, ...) or of a serving cell's load (prompt length,
concurrency, ...). Everything else derives from this table:

- cell ids (``label``, in each kind's id order) and the matrix (``core.matrix``);
- the config schema's axis blocks: ``workflow/schemas/axes.schema.yaml`` is
  generated from here (``python -m llamabench.core.axes``; a test keeps it equal);
- the axis columns of the summary, stats and serving tables (``records`` inserts
  them where a row schema says ``x-axes``) and of the report;
- the llama-bench export (``json_field``: its JSON/SQLite field);
- how each tree's tools spell a value (``Spelling``): flags were renamed over
  llama.cpp's history, so a tool's ``--help`` decides, never a version number.

Each axis has a *role*: a ``setting`` is a choice a user makes (threads, batch
sizes, offload, flash attention, K/V types, the load mode, the server's slots and
switches); a ``workload`` describes the work (prompt and generation lengths,
depth, concurrency, arrivals, request counts, the prompts). Settings are compared
with the defaults at the same workload; workloads are described, never compared
(a shorter prompt is no improvement a user can choose).

An *optional* axis was added after cells had been measured: at its default it is
neither spelled in a cell's id nor passed to a tool, so adding it renamed and
re-measured nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llamabench.core.errors import Unsupported

BENCHMARK, SERVING, QUALITY = "benchmark", "serving", "quality"
# An axis's role: a choice a user makes, or a description of the work (see the module's docstring).
SETTING, WORKLOAD = "setting", "workload"
LLAMA_BENCH, LLAMA_SERVER, LLAMA_PERPLEXITY = "llama-bench", "llama-server", "llama-perplexity"
# Tools that parse their flags with llama.cpp's common arguments, as llama-server does: they spell axes alike.
SPEAKS_AS = {LLAMA_PERPLEXITY: LLAMA_SERVER}


@dataclass(frozen=True)
class Spelling:
    """How one era of a tool takes an axis.

    ``when``: text of the tool's ``--help`` that shows it speaks this spelling (None: every tool that has
    the axis at all). ``flag``: the flag, followed by the value as text, unless ``values`` maps each value
    that can be said to its arguments; a value missing there cannot be said (``unsupported`` says why).
    """

    when: str | None
    flag: str
    values: Mapping[str, tuple[str, ...]] | None = None
    unsupported: str = ""
    separator: str | None = None  # a list value (``3/1``) joined with this instead of ``/``

    def arguments(self, axis: str, value: Any, tool: str) -> list[str]:
        if self.values is None:
            return [self.flag, str(value) if self.separator is None else str(value).replace("/", self.separator)]
        if str(value) not in self.values:
            raise Unsupported(self.unsupported or f"this {tool} cannot say {axis} {value} "
                                                   f"(it takes {', '.join(self.values)})")
        return list(self.values[str(value)])


@dataclass(frozen=True)
class Axis:
    name: str
    label: str  # in cell ids: t2, b2048, fa-auto, ...
    schema: dict[str, Any]  # JSON schema of one value
    column: tuple[str, ...]  # JSON types of its table column
    description: str
    default: Any = None
    optional: bool = False  # added after cells existed: spelled and passed only when not at its default
    optional_in: tuple[str, ...] = ()  # the kinds it joined later, where it is optional in the same way
    sweep: bool = True  # in defaults, groups, scenarios and partial assignments
    json_field: str | None = None  # llama-bench's JSON/SQLite field
    # tool -> its spellings, the first whose ``when`` the tool's --help shows is used
    spellings: Mapping[str, tuple[Spelling, ...]] = field(default_factory=dict)
    role: str = SETTING  # SETTING or WORKLOAD: whether a cell that changes it may be compared with the defaults
    # in a tuning study: a setting its space and candidates may vary, or a workload axis its closed-loop
    # workload may fix (the generated config schema's tune blocks)
    tunable: bool = True
    # whether a setting changes what the model computes (numerics, not only speed): quality cells measure what a
    # cell that changes it costs against the reference (core/quality.py). ALWAYS: on any build (K/V types, flash
    # attention); ON_GPU: where a build has a GPU backend (where layers go: on a CPU build every value is the same)
    quality: str | None = None


ALWAYS, ON_GPU = "always", "on_gpu"
INT = ("integer", "null")
TEXT = ("string", "null")
CACHE_TYPE = {"type": "string", "pattern": "^[A-Za-z0-9_.+-]+$"}
LOAD_MODES = ("auto", "none", "mmap", "mlock", "mmap+mlock", "dio")
SPLIT_MODES = ("none", "layer", "row", "tensor")
# Axes that take on/off, which YAML may hand over as booleans, and the schema of one such value.
SWITCH = {"description": "on or off (YAML's bare on/off arrive as booleans)", "enum": ["on", "off", True, False]}
SWITCHES = ("flash_attn", "cont_batching", "prompt_cache", "kv_unified", "cache_idle_slots", "swa_full")
# How a serving cell's requests arrive: closed keeps ``concurrency`` in flight; the others are open (a rate).
ARRIVALS = ("closed", "constant", "poisson", "gamma")
# A load sweep's own serving axes: its levels' rates and its requests per level (config ``load.<sweep>``).
SWEEP_OWN = ("rate", "requests")


def _flag(flag: str, *tools: str) -> dict[str, tuple[Spelling, ...]]:
    """A flag every tree of these tools has, taking the value as it is."""
    return {tool: (Spelling(None, flag),) for tool in tools}


def _switch(on: str, off: str, axis: str) -> dict[str, tuple[Spelling, ...]]:
    """A llama-server switch said as a pair of flags, where its --help shows the ``off`` one (a tree without it
    cannot say either value: the cell is skipped with the reason)."""
    return {LLAMA_SERVER: (Spelling(off, on, {"on": (on,), "off": (off,)},
                                    f"this llama-server has no {off}: leave {axis} at its default"),)}


def _split_mode(when: str, tool: str) -> tuple[Spelling, ...]:
    """-sm as each tree of ``tool`` takes it: any mode where its --help shows ``when``; mid-2025 trees have no
    tensor."""
    return (Spelling(when, "-sm"),
            Spelling(None, "-sm", {m: ("-sm", m) for m in SPLIT_MODES[:3]},
                     f"this {tool} has no -sm tensor (mid-2025)"))


AXES: dict[str, Axis] = {axis.name: axis for axis in [
    Axis("threads", "t", {"type": "integer", "minimum": 1}, INT, "CPU threads (-t)", 2,
         json_field="n_threads", spellings=_flag("-t", LLAMA_BENCH, LLAMA_SERVER)),
    Axis("batch_size", "b", {"type": "integer", "minimum": 1}, INT, "logical batch size (-b)", 2048,
         json_field="n_batch", spellings=_flag("-b", LLAMA_BENCH, LLAMA_SERVER)),
    Axis("ubatch_size", "ub", {"type": "integer", "minimum": 1}, INT,
         "physical batch size (-ub), at most the batch size", 512,
         json_field="n_ubatch", spellings=_flag("-ub", LLAMA_BENCH, LLAMA_SERVER)),
    Axis("n_gpu_layers", "ngl",
         {"description": "layers offloaded to the GPU: a count, all (the model's block count + 1 for the output "
                         "layer, read from the model), or a share of those up to 100% (rounded); 0 keeps every "
                         "layer on the CPU",
          "oneOf": [{"type": "integer", "minimum": -1}, {"const": "all"},
                    {"type": "string", "pattern": "^(100(\\.0+)?|[0-9]{1,2}(\\.[0-9]+)?)%$"}]},
         ("integer", "string", "null"), "layers offloaded to the GPU (-ngl), as the cell asks", 99,
         json_field="n_gpu_layers", quality=ON_GPU, spellings=_flag("-ngl", LLAMA_BENCH, LLAMA_SERVER)),
    Axis("no_op_offload", "nopo", {"enum": [0, 1]}, INT,
         "1: large prompt matrix products stay on the CPU with the layers kept there (-nopo 1); with "
         "n_gpu_layers 0 a GPU build's true CPU baseline", 0, optional=True, json_field="no_op_offload",
         spellings={LLAMA_BENCH: (Spelling("-nopo,", "-nopo"),)}),
    Axis("split_mode", "sm", {"enum": list(SPLIT_MODES)}, TEXT,
         "how layers are spread over several GPUs (-sm): none (the main GPU alone), layer (pipelined), row (weights "
         "by rows: backends with split buffers, SYCL here), tensor (weights and K/V: needs flash attention)",
         "layer", optional=True, json_field="split_mode", quality=ON_GPU,
         spellings={LLAMA_BENCH: _split_mode("<none|layer|row|tensor>", LLAMA_BENCH),
                    LLAMA_SERVER: _split_mode("{none,layer,row,tensor}", LLAMA_SERVER)}),
    Axis("main_gpu", "mg", {"type": "integer", "minimum": 0}, INT,
         "the GPU that holds the model with split_mode none, or intermediate results with row (-mg)", 0,
         optional=True, json_field="main_gpu", spellings=_flag("-mg", LLAMA_BENCH, LLAMA_SERVER)),
    Axis("tensor_split", "ts", {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(/[0-9]+(\\.[0-9]+)?)+$"}, TEXT,
         "the share of the offloaded layers each GPU takes, as llama-bench writes it (-ts 3/1); unset: by each "
         "device's free memory", None, optional=True, json_field="tensor_split", quality=ON_GPU,
         spellings={LLAMA_BENCH: (Spelling(None, "-ts"),), LLAMA_SERVER: (Spelling(None, "-ts", separator=","),)}),
    Axis("device", "dev", {"type": "string", "pattern": "^(none|[A-Za-z]+[0-9]*(/[A-Za-z]+[0-9]*)*)$"}, TEXT,
         "the GPUs a local cell uses (-dev), by the names of the build's --list-devices joined by / (Vulkan1, "
         "CUDA0/CUDA1), or none (the CPU alone); main_gpu and tensor_split then count these. Unset: every GPU of "
         "the build. An RPC topology chooses its own (rpc.topologies.*.devices)", None, optional=True,
         json_field="devices", quality=ON_GPU,
         spellings={LLAMA_BENCH: (Spelling("-dev,", "-dev"),),
                    LLAMA_SERVER: (Spelling("--device", "--device", separator=","),)}),
    Axis("load_mode", "lm", {"enum": list(LOAD_MODES)}, TEXT,
         "how the model is loaded: auto (mmap unless a device cannot), none (read into memory), mmap, "
         "mlock, mmap+mlock, dio (direct I/O); mid-2025 trees say mmap and none only", "auto",
         optional=True, json_field="load_mode",
         spellings={
             LLAMA_BENCH: (
                 Spelling("--load-mode", "-lm"),
                 Spelling("-mmp, --mmap", "-mmp", {"mmap": ("-mmp", "1"), "none": ("-mmp", "0")},
                          "this llama-bench takes -mmp 0|1 only (mid-2025): load_mode mmap or none can be said, "
                          "no other mode"),
             ),
             LLAMA_SERVER: (
                 Spelling("--load-mode", "-lm"),
                 Spelling("--no-mmap", "--no-mmap", {"mmap": (), "none": ("--no-mmap",),
                                                     "mlock": ("--no-mmap", "--mlock"), "mmap+mlock": ("--mlock",)},
                          "this llama-server has --no-mmap and --mlock only (mid-2025): no direct I/O"),
             ),
         }),
    Axis("flash_attn", "fa",
         {"description": "on/off/auto (llama.cpp from late 2025), or 0/1 (any version); YAML's bare on/off "
                         "arrive as booleans",
          "enum": [0, 1, "on", "off", "auto", True, False]},
         ("string", "integer", "null"), "flash attention (-fa)", "auto", json_field="flash_attn", quality=ALWAYS,
         spellings={
             LLAMA_BENCH: (
                 Spelling("--flash-attn <0|1>", "-fa", {"on": ("-fa", "1"), "1": ("-fa", "1"), "off": ("-fa", "0"),
                                                         "0": ("-fa", "0")},
                          "this llama-bench takes -fa 0/1 only (no auto): set flash_attn to on or off to measure "
                          "this cell on it"),
                 Spelling(None, "-fa"),
             ),
             LLAMA_SERVER: (
                 Spelling("--flash-attn [", "-fa"),
                 Spelling(None, "-fa", {"on": ("-fa",), "1": ("-fa",), "off": (), "0": ()},
                          "this llama-server takes flash attention as a switch (on/off) only, not auto"),
             ),
         }),
    Axis("cache_type_k", "ctk", CACHE_TYPE, TEXT, "K cache type (-ctk)", "f16", json_field="type_k", quality=ALWAYS,
         optional_in=(SERVING,), spellings=_flag("-ctk", LLAMA_BENCH, LLAMA_SERVER)),
    Axis("cache_type_v", "ctv", CACHE_TYPE, TEXT, "V cache type (-ctv)", "f16", json_field="type_v", quality=ALWAYS,
         optional_in=(SERVING,), spellings=_flag("-ctv", LLAMA_BENCH, LLAMA_SERVER)),
    Axis("n_prompt", "p", {"type": "integer", "minimum": 0}, INT, "prompt tokens of the pp test (-p)", 128,
         json_field="n_prompt", role=WORKLOAD, spellings=_flag("-p", LLAMA_BENCH)),
    Axis("n_gen", "n", {"type": "integer", "minimum": 0}, INT, "generated tokens of the tg test (-n)", 32,
         json_field="n_gen", role=WORKLOAD, spellings=_flag("-n", LLAMA_BENCH)),
    Axis("n_depth", "d", {"type": "integer", "minimum": 0}, INT, "tokens already in the context (-d)", 0,
         json_field="n_depth", role=WORKLOAD, spellings=_flag("-d", LLAMA_BENCH)),
    Axis("repetitions", "r", {"type": "integer", "minimum": 1}, INT,
         "llama-bench -r: repetitions inside one measurement (benchmark.repetitions)", 3, sweep=False,
         spellings=_flag("-r", LLAMA_BENCH)),
    Axis("ctx_size", "c", {"type": "integer", "minimum": 1}, INT, "llama-server -c: shared by the slots (-np)",
         4096, spellings=_flag("-c", LLAMA_SERVER)),
    Axis("parallel", "np", {"type": "integer", "minimum": 1}, INT, "llama-server -np: requests served at once", 2,
         spellings=_flag("-np", LLAMA_SERVER)),
    Axis("prompt_tokens", "pt", {"type": "integer", "minimum": 1}, INT,
         "prompt length in this model's tokens, BOS included", 128, role=WORKLOAD),
    Axis("max_tokens", "mt", {"type": "integer", "minimum": 1}, INT, "tokens generated per request (EOS ignored)",
         16, role=WORKLOAD),
    Axis("concurrency", "cc", {"type": "integer", "minimum": 1}, INT,
         "requests in flight at once (an open arrival: the most the client lets be in flight, vLLM's "
         "--max-concurrency)", 1, role=WORKLOAD),
    Axis("requests", "rq", {"type": "integer", "minimum": 1}, INT, "measured requests per cell, after the warm-up",
         6, role=WORKLOAD),
    Axis("cache", "cache", {"enum": ["cold", "warm"]}, TEXT,
         "cold: every prompt processed in full (cache_n == 0 checked); warm: prompts share a prefix the "
         "warm-up primed", "cold", role=WORKLOAD),
    Axis("cont_batching", "cb", SWITCH, TEXT,
         "llama-server continuous batching (-cb / -nocb): off serves one batch of requests at a time", "on",
         optional=True, spellings=_switch("-cb", "-nocb", "cont_batching"), tunable=False),
    Axis("prompt_cache", "pc", {"description": "request, on or off (YAML's bare on/off arrive as booleans)",
                                "enum": ["request", "on", "off", True, False]}, TEXT,
         "the server's prompt cache (--cache-prompt / --no-cache-prompt, trees from late 2025): request leaves "
         "it to each request's cache_prompt (false for cold prompts, true for warm ones); on or off sets the "
         "server's and requests leave it out", "request", optional=True,
         spellings={LLAMA_SERVER: (
             Spelling("--no-cache-prompt", "--cache-prompt", {"on": ("--cache-prompt",),
                                                               "off": ("--no-cache-prompt",)}),)}, tunable=False),
    Axis("arrival", "arr", {"enum": list(ARRIVALS)}, TEXT,
         "how requests arrive: closed (concurrency requests in flight, the next sent when one ends), constant "
         "(every 1/rate s), poisson (exponential gaps of mean 1/rate) or gamma (gamma gaps of mean 1/rate, "
         "shape burstiness: below 1 burstier than Poisson)", "closed", optional=True, role=WORKLOAD, tunable=False),
    Axis("rate", "rate", {"type": "number", "exclusiveMinimum": 0}, ("number", "null"),
         "requests per second offered by an open arrival (constant, poisson, gamma)", None, optional=True,
         role=WORKLOAD, tunable=False),
    Axis("burstiness", "burst", {"type": "number", "exclusiveMinimum": 0}, ("number", "null"),
         "gamma arrivals' shape (vLLM's --burstiness): 1 is Poisson, below 1 burstier (gaps' CV 1/sqrt)", 1.0,
         optional=True, role=WORKLOAD, tunable=False),
    Axis("length_spread", "ls", {"type": "number", "minimum": 0, "exclusiveMaximum": 1}, ("number", "null"),
         "prompt and output lengths drawn uniformly within this share around prompt_tokens and max_tokens "
         "(seeded: the same draws in every round and build); 0: fixed", 0, optional=True, role=WORKLOAD, tunable=False),
    Axis("dataset", "ds", {"type": "string", "pattern": "^[A-Za-z0-9_./~+-]+[.]jsonl$"}, TEXT,
         "a JSONL file of prompts ({\"prompt\": text, \"max_tokens\": n optional}) sent in turn, each "
         "tokenised by the server's /tokenize and cut to at most prompt_tokens; none: the built-in text",
         None, optional=True, role=WORKLOAD, tunable=False),
    # The server's prompt cache and slots (measure/sessions.py: conversations are where they matter).
    Axis("cache_reuse", "crs", {"type": "integer", "minimum": 0}, INT,
         "llama-server --cache-reuse: the smallest chunk of a cached prompt reused by shifting the K/V cache "
         "(0: none); a sliding-window model needs swa_full on", 0, optional=True,
         spellings=_flag("--cache-reuse", LLAMA_SERVER)),
    Axis("slot_prompt_similarity", "sps", {"type": "number", "minimum": 0, "maximum": 1}, ("number", "null"),
         "llama-server -sps: how much a request's prompt must match a slot's to be sent to it (0: any free "
         "slot); none: the server's default (0.10 at 0c1e570)", None, optional=True,
         spellings=_flag("-sps", LLAMA_SERVER)),
    Axis("kv_unified", "kvu", SWITCH, TEXT,
         "llama-server -kvu / -no-kvu: one K/V buffer shared by every slot (a slot may then use the whole "
         "context); none: the server's default (off where -np is given)", None, optional=True,
         spellings=_switch("-kvu", "-no-kvu", "kv_unified")),
    Axis("cache_ram", "cram", {"type": "integer", "minimum": -1}, INT,
         "llama-server -cram: MiB of host memory for prompts saved from slots (-1: no limit, 0: none); none: 0 "
         "where prompts are cold, the server's default where they are reused", None, optional=True,
         spellings=_flag("-cram", LLAMA_SERVER)),
    Axis("cache_idle_slots", "cis", SWITCH, TEXT,
         "llama-server --cache-idle-slots: save idle slots to the host-memory prompt cache on a new task (needs "
         "cache_ram); none: the server's default", None, optional=True,
         spellings=_switch("--cache-idle-slots", "--no-cache-idle-slots", "cache_idle_slots")),
    Axis("swa_full", "swaf", SWITCH, TEXT,
         "llama-server --swa-full: a full-size cache for sliding-window layers (more memory; what cache reuse "
         "needs on such a model)", "off", optional=True,
         spellings={LLAMA_SERVER: (Spelling(None, "--swa-full", {"on": ("--swa-full",), "off": ()}),)}),
    Axis("ctx_checkpoints", "ctxcp", {"type": "integer", "minimum": 0}, INT,
         "llama-server -ctxcp: context checkpoints kept per slot (a sliding-window model restores a shorter "
         "cached prefix from one); none: the server's default (32 at 0c1e570)", None, optional=True,
         spellings={LLAMA_SERVER: (Spelling("--ctx-checkpoints", "-ctxcp"),)}),
    # Conversations (measure/sessions.py): a cell of turns > 1 or a prefix sends sessions, not lone requests.
    Axis("turns", "turns", {"type": "integer", "minimum": 1}, INT,
         "requests per conversation, each resending the history (prefix, earlier turns and their answers) "
         "with prompt_tokens new user tokens and max_tokens generated; requests then counts conversations", 1,
         optional=True, role=WORKLOAD),
    Axis("prefix_tokens", "pre", {"type": "integer", "minimum": 0}, INT,
         "tokens before the first turn (a system prompt, tool definitions), BOS included", 0, optional=True,
         role=WORKLOAD),
    Axis("prefix_scope", "pscope", {"enum": ["all", "session"]}, TEXT,
         "all: every conversation shares the prefix; session: each has its own", "all", optional=True,
         role=WORKLOAD, tunable=False),
    Axis("think_ms", "think", {"type": "number", "minimum": 0}, ("number", "null"),
         "the user's think time between a turn's answer and the next turn, mean ms", 0, optional=True,
         role=WORKLOAD),
    Axis("think", "thd", {"enum": ["exponential", "fixed"]}, TEXT,
         "how think times are drawn: exponential around think_ms (seeded) or fixed", "exponential",
         optional=True, role=WORKLOAD, tunable=False),
    Axis("trace", "trace", {"type": "string", "pattern": "^[A-Za-z0-9_./~+-]+[.]jsonl$"}, TEXT,
         "a JSONL trace replayed on its schedule, one request per line: timestamp (ms from the start), "
         "session_id (optional), input_length (the whole prompt's tokens) or text, output_length "
         "(docs/serving.md#traces); arrival, requests and the conversation axes do not apply", None,
         optional=True, role=WORKLOAD, tunable=False),
]}

# Each kind's axes, in cell-id order (the order never changes: ids are kept results).
ORDER: dict[str, tuple[str, ...]] = {
    BENCHMARK: ("threads", "batch_size", "ubatch_size", "n_gpu_layers", "no_op_offload", "split_mode", "main_gpu",
                "tensor_split", "load_mode", "flash_attn", "cache_type_k", "cache_type_v", "n_prompt", "n_gen",
                "n_depth", "repetitions", "device"),
    SERVING: ("threads", "batch_size", "ubatch_size", "n_gpu_layers", "split_mode", "main_gpu", "tensor_split",
              "load_mode", "flash_attn", "cache_type_k", "cache_type_v", "ctx_size", "parallel", "prompt_tokens",
              "max_tokens", "concurrency", "requests", "cache", "cont_batching", "prompt_cache", "arrival", "rate",
              "burstiness", "length_spread", "dataset", "cache_reuse", "slot_prompt_similarity", "kv_unified",
              "cache_ram", "cache_idle_slots", "swa_full", "ctx_checkpoints", "turns", "prefix_tokens",
              "prefix_scope", "think_ms", "think", "trace", "device"),
}
# A quality cell's axes: the settings that change what the model computes, in the benchmark's id order.
ORDER[QUALITY] = tuple(name for name in ORDER[BENCHMARK] if AXES[name].quality)

# The settings a serving cell shares with its llama-bench partner (the source of its estimate).
SERVER_SHARED = ("threads", "batch_size", "ubatch_size", "n_gpu_layers", "split_mode", "main_gpu", "tensor_split",
                 "load_mode", "flash_attn", "cache_type_k", "cache_type_v", "device")

# Figure name -> (x axis, axis that splits lines or None, log-scaled x). Batch and ubatch are swept together
# (ubatch is capped at batch), so the batch figure draws one line per ubatch size.
FIGURES: dict[str, tuple[str, str | None, bool]] = {
    "threads": ("threads", None, False),
    "batch": ("batch_size", "ubatch_size", True),
    "gpu_layers": ("n_gpu_layers", None, False),
}


def of(kind: str) -> list[Axis]:
    return [AXES[name] for name in ORDER[kind]]


def names(kind: str) -> tuple[str, ...]:
    return ORDER[kind]


def workload(kind: str) -> tuple[str, ...]:
    """The axes of ``kind`` that describe the work rather than choose how to do it, in id order."""
    return tuple(name for name in ORDER[kind] if AXES[name].role == WORKLOAD)


def same_workload(params: Mapping[str, Any], other: Mapping[str, Any], kind: str) -> bool:
    """Whether two cells of ``kind`` do the same work: only then is one a setting to compare with the other."""
    return all(value(params, name, kind) == value(other, name, kind) for name in workload(kind))


def canonical(name: str, value: Any) -> Any:
    """One spelling per value: YAML reads a bare ``on``/``off`` as a boolean, so the switches say on/off."""
    if name in SWITCHES and isinstance(value, bool):
        return "on" if value else "off"
    return value


def canonical_partial(partial: Mapping[str, Any]) -> dict[str, Any]:
    return {name: canonical(name, value) for name, value in partial.items()}


def optional(name: str, kind: str | None = None) -> bool:
    """Whether ``name`` is optional (in cells of ``kind``): left out of ids, params and commands at its default."""
    axis = AXES[name]
    return axis.optional or kind in axis.optional_in


def at_default(params: Mapping[str, Any], name: str, kind: str | None = None) -> bool:
    """Whether ``name`` is an optional axis that ``params`` leaves at (or does not give beyond) its default."""
    return optional(name, kind) and params.get(name, AXES[name].default) == AXES[name].default


def value(params: Mapping[str, Any], name: str, kind: str | None = None) -> Any:
    """An axis's value in a cell's parameters, an optional axis's default where they leave it out."""
    return params.get(name, AXES[name].default if optional(name, kind) else None)


def normalize(params: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """A cell's parameters: every axis of ``kind`` in id order, canonical values, optional ones only when set."""
    return {name: canonical(name, params[name]) for name in ORDER[kind] if not at_default(params, name, kind)}


def arguments(params: Mapping[str, Any], kind: str, tool: str, help_text: str) -> list[str]:
    """The cell's parameters as ``tool``'s flags, every axis it takes explicit, spelled for this tree.

    ``help_text`` is the tool's ``--help`` (empty: unknown). An optional axis
    at its default is not passed at all; a value this tree cannot say raises Unsupported with the reason.
    """
    found: list[str] = []
    for name in ORDER[kind]:
        spellings = AXES[name].spellings.get(SPEAKS_AS.get(tool, tool))
        if not spellings or at_default(params, name, kind):
            continue
        found += spelling(name, tool, help_text).arguments(name, params[name], tool)
    return found


def spelling(name: str, tool: str, help_text: str) -> Spelling:
    """The spelling of axis ``name`` that this ``tool`` (its ``--help``) speaks; with no help text (the tool
    cannot run: the cell then fails with its own reason) the one every tree takes, else the newest."""
    spellings = AXES[name].spellings[SPEAKS_AS.get(tool, tool)]
    if not help_text:
        return next((s for s in spellings if s.when is None), spellings[0])
    for candidate in spellings:
        if candidate.when is None or candidate.when in help_text:
            return candidate
    flags = "/".join(s.flag for s in spellings)
    raise Unsupported(f"this {tool} has no {flags} ({name}): leave {name} at its default to measure this cell on it")


def columns(kind: str) -> dict[str, dict[str, Any]]:
    """The axis columns of a table of ``kind`` cells (row schemas insert them where they say ``x-axes``)."""
    return {axis.name: {"type": list(axis.column), "description": axis.description} for axis in of(kind)}


def schema_defs() -> dict[str, Any]:
    """The config schema's axis blocks, as ``workflow/schemas/axes.schema.yaml`` holds them."""
    sweepable = {kind: [a for a in of(kind) if a.sweep] for kind in (BENCHMARK, SERVING)}
    values = {a.name: {**({"description": a.description} if "description" not in a.schema else {}), **a.schema}
              for a in AXES.values()}
    ref = {name: {"$ref": f"#/$defs/{name}"} for name in AXES}
    lists = {name: {"type": "array", "minItems": 1, "items": ref[name]} for name in AXES}
    groups = {a.name: lists[a.name] for a in sweepable[BENCHMARK]}
    groups["builds"] = {"description": "restrict this group to these builds (e.g. an n_gpu_layers sweep for GPU "
                                       "builds only)", "type": "array", "minItems": 1, "items": {"type": "string"}}
    return {
        **values,
        "benchmark_defaults": _defaults(sweepable[BENCHMARK],
                                        "the value of every axis a group does not sweep; the defaults cell is the "
                                        "reference for speed-ups"),
        "serving_defaults": _defaults(sweepable[SERVING], "the value of every serving axis a scenario does not sweep"),
        "group": {"description": "a named sweep: it crosses its own axes (lists), the others keep their defaults",
                  "type": "object", "additionalProperties": False, "properties": groups},
        "scenario": {"description": "a named serving sweep: it crosses its own axes (lists), the others keep "
                                    "serving.defaults",
                     "type": "object", "additionalProperties": False,
                     "properties": {a.name: lists[a.name] for a in sweepable[SERVING]}},
        "partial": {"description": "a partial assignment of benchmark axes to single values", "type": "object",
                    "additionalProperties": False, "minProperties": 1,
                    "properties": {a.name: ref[a.name] for a in sweepable[BENCHMARK]}},
        **_study_defs(sweepable, ref, lists),
    }


def _study_defs(sweepable: Mapping[str, list[Axis]], ref: Mapping[str, Any], lists: Mapping[str, Any],
                ) -> dict[str, Any]:
    """The tuning and load blocks: which axes a study's space, candidates and workload and a sweep's settings
    take follows from each axis's kind, role and ``tunable``, so making an axis tunable is one flag."""
    names = dict.fromkeys(a.name for a in [*sweepable[BENCHMARK], *sweepable[SERVING]])
    tunable = [AXES[name] for name in names if AXES[name].tunable]
    settings = [a for a in tunable if a.role == SETTING]
    sweep = {a.name: ref[a.name] for a in sweepable[SERVING] if a.name not in SWEEP_OWN}
    sweep["arrival"] = {"enum": [a for a in ARRIVALS if a != "closed"],
                        "description": "how requests arrive: open, at each level's rate (poisson unless set)"}
    return {
        "range": {"description": "from, to, and a step (from, from + step, ...) or a factor (from, from * factor, "
                                 "...), both ends included",
                  "type": "object", "additionalProperties": False, "required": ["from", "to"],
                  "oneOf": [{"required": ["step"]}, {"required": ["factor"]}],
                  "properties": {"from": {"type": "integer", "minimum": 0}, "to": {"type": "integer", "minimum": 0},
                                 "step": {"type": "integer", "minimum": 1},
                                 "factor": {"type": "integer", "minimum": 2}}},
        "tune_workload": {"type": "object", "additionalProperties": False,
                          "properties": {a.name: ref[a.name] for a in tunable if a.role == WORKLOAD}},
        "tune_space": {"type": "object", "additionalProperties": False,
                       "properties": {a.name: {"oneOf": [lists[a.name], {"$ref": "#/$defs/range"}]}
                                      for a in settings}},
        "tune_candidate": {"type": "object", "additionalProperties": False,
                           "properties": {a.name: ref[a.name] for a in settings}},
        "load_settings": {"type": "object", "additionalProperties": False, "properties": sweep},
    }


def _defaults(axes: list[Axis], description: str) -> dict[str, Any]:
    return {"description": description, "type": "object", "additionalProperties": False,
            "properties": {a.name: {"$ref": f"#/$defs/{a.name}",
                                    **({"default": a.default} if a.default is not None else {})} for a in axes}}


def schema_document() -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "Generated from llamabench/core/axes.py (python -m llamabench.core.axes > "
                           "workflow/schemas/axes.schema.yaml); tests/test_axes.py keeps the two equal.",
            "$defs": schema_defs()}


if __name__ == "__main__":
    import yaml

    class _Plain(yaml.SafeDumper):
        """Each block written out in full: a reader of the file sees no YAML anchors."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    yaml.dump(schema_document(), sys.stdout, Dumper=_Plain, sort_keys=False, width=120)

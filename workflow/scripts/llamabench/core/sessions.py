"""Conversations as the config asks for them: which serving cells send sessions or a trace, and what cannot be
served (measure/sessions.py builds and sends them).

A cell sends conversations when it has ``turns`` > 1, a ``prefix_tokens`` prefix or a ``trace``; each must fit a
slot's context, a trace must be one (docs/serving.md#traces), and cache reuse on a sliding-window model needs a
full-size SWA cache. Each check is a sentence naming the axis or the line, said before any job
(core/configuration.py) or, where only the model's file can tell, by the cell (serve_cell.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llamabench.core import axes

# The fields of a trace line.
TRACE_FIELDS = ("timestamp", "session_id", "input_length", "text", "output_length")


def conversational(params: Mapping[str, Any]) -> bool:
    """Whether a serving cell sends conversations (turns, a prefix or a trace) rather than lone requests."""
    return (axes.value(params, "turns", axes.SERVING) > 1 or axes.value(params, "prefix_tokens", axes.SERVING) > 0
            or bool(axes.value(params, "trace", axes.SERVING)))


def slot_context(params: Mapping[str, Any]) -> int:
    """The tokens one conversation may hold: the context split over the slots, or all of it with a unified
    K/V buffer (-kvu)."""
    if axes.value(params, "kv_unified", axes.SERVING) == "on":
        return params["ctx_size"]
    return params["ctx_size"] // params["parallel"]


def longest(params: Mapping[str, Any]) -> int:
    """The most tokens a conversation of this cell holds at its end: prefix + turns x (user + generated), the
    lengths at the top of their spread."""
    grow = 1 + (axes.value(params, "length_spread", axes.SERVING) or 0)
    turns = axes.value(params, "turns", axes.SERVING)
    return (axes.value(params, "prefix_tokens", axes.SERVING)
            + turns * (round(params["prompt_tokens"] * grow) + round(params["max_tokens"] * grow)))


def problem(params: Mapping[str, Any]) -> str | None:
    """Why a serving cell's conversations cannot be served as asked (one sentence naming the axes), or None: a
    conversation longer than a slot's context (the server would shift or refuse it), or a trace that is not one."""
    room = slot_context(params)
    if trace := axes.value(params, "trace", axes.SERVING):
        try:
            lines = read_trace(Path(trace).expanduser())
        except ValueError as err:
            return str(err)
        for number, line in lines:
            if "input_length" in line and line["input_length"] + line["output_length"] > room:
                return (f"trace {trace} line {number}: input_length + output_length = "
                        f"{line['input_length'] + line['output_length']} tokens exceed a slot's context of {room} "
                        "(ctx_size / parallel): raise ctx_size or lower parallel")
        return None
    if not conversational(params):
        return None
    if (needed := longest(params)) > room:
        return (f"a conversation of prefix_tokens + turns x (prompt_tokens + max_tokens) = {needed} tokens exceeds a "
                f"slot's context of {room} (ctx_size / parallel, or ctx_size with kv_unified on): raise "
                "ctx_size, lower parallel, or shorten the conversation")
    return None


def reuse_problem(params: Mapping[str, Any], sliding_window: int | None) -> str | None:
    """Cache reuse asked of a sliding-window model without a full-size SWA cache: llama-server disables it
    ("cache_reuse is not supported by this context"), so the cell would say reuse makes no difference."""
    if axes.value(params, "cache_reuse", axes.SERVING) and sliding_window \
            and axes.value(params, "swa_full", axes.SERVING) != "on":
        return (f"cache_reuse {params['cache_reuse']} asks for cache reuse of a model with sliding-window attention "
                f"(window {sliding_window}), for which llama-server disables it unless swa_full is on: set "
                "swa_full: on (a full-size cache, more memory) or leave cache_reuse at 0")
    return None


def read_trace(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """A trace's lines, numbered from 1: each a JSON object of TRACE_FIELDS only, a timestamp that never goes
    back, a length or a text and an output length. ValueError names the first line that is not."""
    if not path.is_file():
        raise ValueError(f"trace {path} is not a file")
    found: list[tuple[int, dict[str, Any]]] = []
    last = 0.0
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        where = f"trace {path} line {number}"
        try:
            line = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where} is not JSON: {err.msg}") from None
        if not isinstance(line, dict):
            raise ValueError(f"{where} is not a JSON object")
        if unknown := sorted(set(line) - set(TRACE_FIELDS)):
            raise ValueError(f"{where} has unknown fields {', '.join(unknown)} (it takes {', '.join(TRACE_FIELDS)})")
        if not isinstance(line.get("timestamp"), (int, float)) or line["timestamp"] < 0:
            raise ValueError(f"{where}: timestamp must be a number of ms from the start, at least 0")
        if line["timestamp"] < last:
            raise ValueError(f"{where}: timestamp {line['timestamp']} goes back (the line before says {last})")
        last = line["timestamp"]
        if ("input_length" in line) == ("text" in line):
            raise ValueError(f"{where} needs input_length or text, one of them")
        for key in ("input_length", "output_length"):
            if key in line and (not isinstance(line[key], int) or line[key] < 1):
                raise ValueError(f"{where}: {key} must be a whole number of tokens, at least 1")
        if "output_length" not in line:
            raise ValueError(f"{where} needs output_length")
        found.append((number, line))
    if not found:
        raise ValueError(f"trace {path} has no requests")
    return found

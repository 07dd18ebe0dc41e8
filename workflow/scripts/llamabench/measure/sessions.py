"""Conversations: what a serving cell sends when its work is sessions or a trace rather than lone requests.

A chat or an agent resends its whole history every turn: a prefix shared by
every conversation (a system prompt, tool definitions) or its own, then turn by
turn ``prompt_tokens`` new user tokens, the answer the server generated
(``max_tokens``, its very tokens: ``return_tokens``), and so on; between an
answer and the next turn the user thinks (``think_ms``, exponential or fixed).
The server's slot prompt cache decides most of a later turn's time to first
token, so these cells measure it where lone requests cannot.

A *trace* replays requests a user exported from their own logs (docs/serving.md#traces):
one JSON object per line, ``timestamp`` (ms from the start), ``session_id``
(optional), ``input_length`` (the whole prompt, as a server logs it) or
``text``, and ``output_length``. A request is sent at its time, or when its
session's previous one has ended if that is later; a later request of a session
whose logged prompt is at least its history extends the history, a shorter one
starts again (the client truncated it).

Every cell is a list of conversations, a lone request being a conversation of
one turn: the client (measure/llama_server.py) has one way to send work. The
shapes here are pure; token ids come from the server's own tokenizer. Which cells send conversations, and what
cannot be served, is core/sessions.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from llamabench.core import axes
from llamabench.core.sessions import read_trace
from llamabench.measure import arrivals
# The most conversations a trace's replay keeps in flight (one client thread each).
TRACE_THREADS = 256
# A fixed text to cut turns and prefixes from (plain words tokenize alike in every vocabulary).
TURN_TEXT = (
    "Please look at the notes below and tell me what to change next, keeping every earlier decision in mind. "
    "The build runs on two cores, the model is small, and the answers should stay short and specific. "
)
PREFIX_TEXT = (
    "You are a careful assistant with tools for reading files, running commands and searching the web. "
    "Answer in short sentences, call a tool only when it is needed, and never invent a result. "
)

Tokenize = Callable[[str, bool], list[int]]  # (text, add BOS) -> the server's token ids


def think_times(params: Mapping[str, Any], count: int, seed: str) -> list[float]:
    """Seconds of thinking before each of ``count`` later turns: fixed, or exponential around think_ms."""
    mean = (axes.value(params, "think_ms", axes.SERVING) or 0) / 1000
    if not mean or not count:
        return [0.0] * count
    if axes.value(params, "think", axes.SERVING) == "fixed":
        return [mean] * count
    return [round(float(t), 6) for t in arrivals.rng(seed).exponential(mean, count)]


def turn(new: list[int], max_tokens: int, think_s: float = 0.0, at_s: float | None = None,
         fresh: bool = False) -> dict[str, Any]:
    """One turn: the tokens it adds to the history, what it generates, when it is sent (``think_s`` after the
    previous turn's answer; a trace's ``at_s`` from the start); ``fresh``: its prompt starts again."""
    return {"new": new, "max_tokens": max_tokens, "think_s": think_s, "at_s": at_s, "fresh": fresh}


def cut(tokenize: Tokenize, head: str, text: str, n_tokens: int, bos: bool) -> list[int]:
    """Exactly ``n_tokens`` of the server's tokens of ``head`` and ``text`` repeated (BOS first if ``bos``)."""
    ids = tokenize(head + text * (n_tokens // 20 + 2), bos)
    return ids[:n_tokens]


def sessions(tokenize: Tokenize, params: Mapping[str, Any], seed: str, first: int = 0,
             count: int | None = None) -> list[dict[str, Any]]:
    """``count`` conversations (the cell's ``requests`` unless given), numbered from ``first``: the prefix (shared
    or each its own) in the first turn, then user turns of the drawn lengths, think times between them."""
    count = params["requests"] if count is None else count
    turns = axes.value(params, "turns", axes.SERVING)
    prefix_n = axes.value(params, "prefix_tokens", axes.SERVING)
    shared = axes.value(params, "prefix_scope", axes.SERVING) == "all"
    prefix = cut(tokenize, "", PREFIX_TEXT, prefix_n, True) if shared and prefix_n else None
    sizes = arrivals.lengths(params, count * turns, f"{seed}:lengths")
    found = []
    for index in range(first, first + count):
        own = prefix
        if own is None and prefix_n:
            own = cut(tokenize, f"Session {index}. ", PREFIX_TEXT, prefix_n, True)
        thinking = [0.0, *think_times(params, turns - 1, f"{seed}:think:{index}")]
        steps = []
        for t in range(turns):
            user, output = sizes[(index - first) * turns + t]
            # A new session's first words tell it from every other from its first user token on.
            new = cut(tokenize, f"User {index}, turn {t + 1}: ", TURN_TEXT, user, bos=not own and t == 0)
            steps.append(turn((own or []) + new if t == 0 else new, output, thinking[t]))
        found.append({"session": index, "turns": steps})
    return found


def lone(prompts: list[list[int]], outputs: list[int], first: int = 0) -> list[dict[str, Any]]:
    """Lone requests as conversations of one turn each."""
    return [{"session": i, "turns": [turn(p, o)]} for i, (p, o) in enumerate(zip(prompts, outputs), start=first)]


def replay(tokenize: Tokenize, path: Path) -> list[dict[str, Any]]:
    """A trace's conversations: its lines grouped by session (a line without one is a session of its own), each
    turn at its time; a prompt that reaches past its session's history extends it by new tokens, a shorter one
    starts again at its own length."""
    by_session: dict[str, dict[str, Any]] = {}
    for number, line in read_trace(path):
        key = str(line.get("session_id", f"line {number}"))
        conversation = by_session.setdefault(key, {"session": key, "turns": [], "length": 0})
        at_s = line["timestamp"] / 1000
        if "text" in line:
            ids = tokenize(line["text"], not conversation["turns"])
            new, fresh = ids, False
        else:
            # The history's length once the previous turn is answered, as the logs would count it.
            history = conversation["length"]
            fresh = line["input_length"] <= history
            size = line["input_length"] if fresh or not conversation["turns"] else line["input_length"] - history
            new = cut(tokenize, f"Trace {key}, line {number}: ", TURN_TEXT, size,
                      bos=fresh or not conversation["turns"])
        conversation["turns"].append(turn(new, line["output_length"], at_s=at_s, fresh=fresh))
        total = (len(new) if fresh else conversation["length"] + len(new))
        conversation["length"] = total + line["output_length"]
    return [{"session": c["session"], "turns": c["turns"]} for c in by_session.values()]

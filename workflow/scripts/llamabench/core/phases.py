"""llama-bench's ``--progress`` markers: which phase of a run (load, warm-up, prompt, generation) each stretch
of time belongs to.

llama-bench prints a marker as each phase starts, so the stretch from one marker
to the next is that phase. Whatever is read at every marker (the bytes an RPC
link carried, a GPU's energy counter) is attributed phase by phase this way, and
the phases add up to the whole run by construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, TypeVar

MARKER = "llama-bench: benchmark "

PHASES = {"starting": "load", "warmup prompt run": "warmup", "warmup generation run": "warmup",
          "prompt run": "prompt", "generation run": "generation", "depth run": "depth"}

# Labels of the marks taken before llama-bench starts and after it ends.
BEFORE, END = "before", "end"

# Phases a mark may name directly (a serving cell marks its own: load, warm-up, the measured requests).
REQUESTS = "requests"
NAMED = {*PHASES.values(), REQUESTS}

T = TypeVar("T")


def fraction(line: str) -> float | None:
    """How far a run is at a marker: ``benchmark 2/4: generation run 3/5`` -> (1 + 3/5) / 4; a warm-up or
    ``starting`` counts its test as not begun; None for anything else."""
    found = re.search(r"benchmark (\d+)/(\d+): (.*?)(?: (\d+)/(\d+))?(?: \(cached\))?$", line)
    if not found:
        return None
    test, tests = int(found[1]), int(found[2])
    done = int(found[4]) / int(found[5]) if found[4] and not found[3].startswith("warmup") else 0.0
    return (test - 1 + done) / tests


def phase_of(line: str) -> str:
    """``llama-bench: benchmark 2/4: generation run 3/5`` -> ``generation``; a phase's own name -> itself;
    anything unknown -> ``other``."""
    if line in NAMED:
        return line
    text = re.sub(r"^llama-bench: benchmark \d+/\d+: ", "", line)
    text = re.sub(r" \d+/\d+( \(cached\))?$", "", text)
    return PHASES.get(text, "other")


def stretches(marks: list[tuple[str, float, T]]) -> Iterator[tuple[str, float, T, float, T]]:
    """(phase, start time, reading at start, end time, reading at end) for each stretch between two marks."""
    for (line, start, first), (_, end, last) in zip(marks, marks[1:]):
        yield ("other" if line == BEFORE else phase_of(line)), start, first, end, last


def phase_seconds(marks: list[tuple[str, float, Any]]) -> dict[str, float]:
    """Wall time per phase."""
    seconds: dict[str, float] = {}
    for phase, start, _, end, _ in stretches(marks):
        seconds[phase] = seconds.get(phase, 0.0) + end - start
    return seconds

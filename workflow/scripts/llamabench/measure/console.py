"""Progress of a long job on the console, at a calm rate; the job's log keeps the full output.

A job's standard output reaches the terminal that runs Snakemake. A build prints
nothing there for minutes and a cell only when it ends, so long work says where
it is: a line when at least ``INTERVAL_S`` seconds passed since the last one, or
when the work advanced by a tenth since then.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

INTERVAL_S = 10.0
STEP = 0.1  # a line also when the work advanced this share since the last one
COUNTER = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]", re.MULTILINE)  # ninja's [12/345], llama-quantize's [  12/ 183]


class Ticker:
    """Prints ``<what>: <text>`` lines, at most one per ``interval`` seconds unless the work advanced by ``STEP``."""

    def __init__(self, what: str, interval: float = INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.interval, self.clock = what, interval, clock
        self.last_time: float | None = None
        self.last_fraction = 0.0

    def update(self, text: str, fraction: float | None = None) -> bool:
        """Print ``text`` if it is due; returns whether it did."""
        now = self.clock()
        due = self.last_time is None or now - self.last_time >= self.interval or (
            fraction is not None and fraction - self.last_fraction >= STEP)
        if due:
            print(f"llamabench: {self.what}: {text}", flush=True)
            self.last_time = now
            if fraction is not None:
                self.last_fraction = fraction
        return due


def ccache_counts(stats_log: Path) -> tuple[int, int]:
    """(hits, compilations) in a ccache statistics log (``CCACHE_STATSLOG``): one ``# <file>`` entry per
    compilation, followed by its counters."""
    try:
        text = stats_log.read_text(errors="replace")
    except OSError:
        return 0, 0
    entries = text.split("\n# ")
    hits = sum("direct_cache_hit" in e or "preprocessed_cache_hit" in e for e in entries)
    return hits, sum(1 for e in entries if e.strip())


def counted(log_text: str, unit: str) -> tuple[str, float | None] | None:
    """``12/183 tensors`` from the last ``[n/m]`` counter of a tool's output so far, or None before the first."""
    found = COUNTER.findall(log_text)
    if not found:
        return None
    done, total = (int(x) for x in found[-1])
    return f"{done}/{total} {unit}", done / total if total else None


def build_line(log_text: str, stats_log: Path) -> tuple[str, float | None] | None:
    """``120/310 targets, ccache 95/120 hits`` from the build's output so far (ninja's ``[n/m]``) and this build's
    ccache statistics, or None before ninja's first line."""
    found = counted(log_text, "targets")
    if found is None:
        return None
    hits, compiled = ccache_counts(stats_log)
    return f"{found[0]}, ccache {hits}/{compiled} hits", found[1]


class LogWatcher:
    """While a tool runs, reads the job's log as it grows and prints ``line_of`` its new output (a thread;
    stopped on exit)."""

    def __init__(self, what: str, log: Path | None, line_of: Callable[[str], tuple[str, float | None] | None],
                 poll_s: float = 1.0) -> None:
        self.ticker, self.log, self.line_of, self.poll_s = Ticker(what), log, line_of, poll_s
        self.stop = threading.Event()
        self.start_at = log.stat().st_size if log and log.exists() else 0
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> LogWatcher:
        if self.log is not None:
            self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def _watch(self) -> None:
        while not self.stop.wait(self.poll_s):
            try:
                with open(self.log, errors="replace") as f:
                    f.seek(self.start_at)
                    text = f.read()
            except OSError:
                continue
            if found := self.line_of(text):
                self.ticker.update(*found)

"""Progress of a long job on the console, at a calm rate; the job's log keeps the full output.

A job's standard output reaches the terminal that runs Snakemake. A build prints
nothing there for minutes and a cell only when it ends, so long work says where
it is: a line when at least ``INTERVAL_S`` seconds passed since the last one, or
when the work advanced by a tenth since then.
"""

from __future__ import annotations

import importlib.metadata
import io
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tqdm

INTERVAL_S = 10.0
STEP = 0.1  # a line also when the work advanced this share since the last one
COUNTER = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]", re.MULTILINE)  # ninja's [12/345], llama-quantize's [  12/ 183]
PIP_FILE = re.compile(r"^\s*Downloading (\S+)", re.MULTILINE)  # pip: "  Downloading <file> (61.0 MB)"
PIP_BYTES = re.compile(r"^Progress (\d+) of (\d+)$", re.MULTILINE)  # pip --progress-bar raw
GIT_OBJECTS = re.compile(r"Receiving objects:\s+\d+% \((\d+)/(\d+)\)(?:, ([\d.]+ \w+))?")  # git --progress
# reads a tool's new output: the text to show and the share of the work done (None: unknown), or None
LineReader = Callable[[str], tuple[str, float | None] | None]


class Ticker:
    """Prints ``<what>: <text>`` lines, at most one per ``interval`` seconds unless the work advanced by ``STEP``
    or is done."""

    def __init__(self, what: str, interval: float = INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.interval, self.clock = what, interval, clock
        self.last_time: float | None = None
        self.last_fraction = 0.0

    def update(self, text: str, fraction: float | None = None) -> bool:
        """Print ``text`` if it is due; returns whether it did."""
        now = self.clock()
        due = self.last_time is None or now - self.last_time >= self.interval or (
            fraction is not None and (fraction - self.last_fraction >= STEP or fraction >= 1 > self.last_fraction))
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


def bytes_line(done: float, total: float | None) -> tuple[str, float | None]:
    """``12.0/61.0 MB`` and the fraction done (None where the total is unknown)."""
    of = f"/{total / 1e6:.1f}" if total else ""
    return f"{done / 1e6:.1f}{of} MB", done / total if total else None


def pip_line(log_text: str) -> tuple[str, float | None] | None:
    """The file pip downloads and its bytes so far, from its ``--progress-bar raw`` output, or None before the
    first counter (a file pip finds on disk has none)."""
    files, counts = list(PIP_FILE.finditer(log_text)), list(PIP_BYTES.finditer(log_text))
    if not files or not counts or counts[-1].start() < files[-1].start():
        return None
    text, fraction = bytes_line(*(int(x) for x in counts[-1].groups()))
    return f"{files[-1].group(1)}: {text}", fraction


def git_line(log_text: str) -> tuple[str, float | None] | None:
    """``690/3925 objects, 2.57 MiB`` from git's ``--progress`` output so far (counts it rewrites after carriage
    returns), or None before the first (git counts only a fetch that takes a while)."""
    found = GIT_OBJECTS.findall(log_text)
    if not found:
        return None
    done, total, size = found[-1]
    return f"{done}/{total} objects" + (f", {size}" if size else ""), int(done) / int(total)


def pip_progress() -> list[str]:
    """pip's flags for a counter per downloaded file in its output (``raw`` came with pip 24.1; an older pip
    downloads without)."""
    major, minor = (int(x) for x in re.findall(r"\d+", importlib.metadata.version("pip"))[:2])
    return ["--progress-bar", "raw"] if (major, minor) >= (24, 1) else []


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


class DownloadBar(tqdm.tqdm):
    """huggingface_hub's progress bar (its ``tqdm_class``): bytes/total on the console at the calm rate instead
    of a bar redrawn in place, which a log or a cluster's output file cannot show. ``download_bar`` names it."""

    label = "file"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("name", None)
        super().__init__(*args, **{**kwargs, "file": _Discard()})
        self.ticker = Ticker("download")

    def update(self, n: float | None = 1) -> bool | None:
        shown = super().update(n)
        text, fraction = bytes_line(self.n, self.total)
        self.ticker.update(f"{self.label}: {text}", fraction)
        return shown


def download_bar(label: str) -> type[DownloadBar]:
    """A ``DownloadBar`` whose lines name ``label`` (huggingface_hub's own description is a truncated URL)."""
    return type("DownloadBar", (DownloadBar,), {"label": label})


class LogWatcher:
    """While a tool runs, reads the job's log as it grows and prints ``line_of`` its new output (a thread;
    stopped on exit)."""

    def __init__(self, what: str, log: Path | None, line_of: LineReader, poll_s: float = 1.0) -> None:
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
            self._poll()  # the tool's last words: a finished download or build says so

    def _watch(self) -> None:
        while not self.stop.wait(self.poll_s):
            self._poll()

    def _poll(self) -> None:
        try:
            with open(self.log, errors="replace") as f:
                f.seek(self.start_at)
                text = f.read()
        except OSError:
            return
        if found := self.line_of(text):
            self.ticker.update(*found)

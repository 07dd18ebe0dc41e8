"""What a run's process held: its resident pages while it runs, and the CPU features that decide repacking.

A memory prediction's totals are checked against the process's resident set,
read from ``/proc/<pid>/status`` so that file-backed pages (the model's mapping,
which the kernel may drop and read again) are told apart from anonymous memory;
its components against the buffers llama.cpp logs (derive/buffers.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

def resident(pid: int) -> dict[str, float] | None:
    """The process's resident MiB now, in all, file-backed (the model's mapped pages and the program's own) and
    anonymous, and its peak since it started its program (``VmHWM``: unlike ``wait4``'s peak, not inherited
    from the process that forked it); None once it is gone. From ``/proc/<pid>/status``, whose counters cost
    microseconds: ``smaps`` walks the page tables, ~20 ms for a 1.4 GB process, too much beside a measurement."""
    fields = {"VmRSS:": "rss_mib", "RssFile:": "file_mib", "RssAnon:": "anonymous_mib", "VmHWM:": "peak_rss_mib"}
    found = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key = line.split(None, 1)[0] if line.strip() else ""
                if key in fields:
                    found[fields[key]] = round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return found if len(found) == len(fields) else None


@contextmanager
def watching(pid: int, interval_s: float) -> Iterator[dict[str, float]]:
    """Read the process's resident split every ``interval_s`` while the body runs; yields the reading at the
    largest resident set seen, with the largest peak read (filled in as it runs, final when the body is
    done)."""
    peak: dict[str, float] = {}
    done = threading.Event()

    def poll() -> None:
        while True:
            now = resident(pid)
            if now and now["rss_mib"] > peak.get("rss_mib", -1):
                peak.update(now)
            if now:
                peak["peak_rss_mib"] = max(peak.get("peak_rss_mib", 0.0), now["peak_rss_mib"])
            if done.wait(interval_s):
                return

    watcher = threading.Thread(target=poll, name="resident", daemon=True)
    watcher.start()
    try:
        yield peak
    finally:
        done.set()
        watcher.join()


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags that decide which weights the CPU backend repacks (derive/memory.py)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return frozenset(flags) & {"avx2", "avx512f"}

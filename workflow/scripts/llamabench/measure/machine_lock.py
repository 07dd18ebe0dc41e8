"""One measurement at a time on this machine, across every checkout, test run and workflow instance.

Snakemake's ``bench_slot`` resource serialises measurements inside one run only.
Every measuring step also holds this lock, exclusively, for its whole
measurement; builds and model preparation, which load every core, hold it
shared, so they may overlap each other but never a measurement. It is an
``flock`` on a local file (``/tmp`` by default, ``$LLAMABENCH_LOCK`` to move it):
per machine, released by the kernel when its holder dies, whatever the death.
Keep it off a shared home directory on a cluster, or it would serialise the
whole cluster.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_ENV = "LLAMABENCH_LOCK"
DEFAULT_LOCK = Path("/tmp/llamabench-measure.lock")


def lock_path() -> Path:
    return Path(os.environ.get(LOCK_ENV) or DEFAULT_LOCK)


_exclusive_depth = 0  # this process already holds the lock exclusively: nested holds are free
_held_fds: list[int] = []  # the descriptors of the holds now open


def fds() -> tuple[int, ...]:
    """The lock's descriptors this process holds: a child that inherits one keeps the lock held until the child
    is gone too (a flock belongs to its open file description), so no measurement starts beside an orphan."""
    return tuple(_held_fds)


@contextlib.contextmanager
def held(what: str, shared: bool = False) -> Iterator[float]:
    """Hold the machine's measurement lock while the body runs; yields the seconds spent waiting for it.

    Re-entrant for the exclusive hold: a step holds it around everything it
    measures, and the measuring functions it calls (which hold it themselves
    when a test calls them directly) then wait for nothing.
    """
    global _exclusive_depth
    if _exclusive_depth:
        yield 0.0
        return
    path = lock_path()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    start = time.monotonic()
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"llamabench: {what} waits for the machine's measurement lock ({path}; "
                  f"held by {_holder(path)})", flush=True)
            fcntl.flock(fd, mode)
        waited = time.monotonic() - start
        if not shared:
            _note_holder(path, what)
            _exclusive_depth += 1
        _held_fds.append(fd)
        try:
            yield waited
        finally:
            _held_fds.remove(fd)
            if not shared:
                _exclusive_depth -= 1
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _note_holder(path: Path, what: str) -> None:
    with contextlib.suppress(OSError):
        Path(f"{path}.holder").write_text(json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "what": what, "cwd": os.getcwd(),
             "since": time.strftime("%Y-%m-%dT%H:%M:%S")}))


def _holder(path: Path) -> str:
    """Who holds it, as the last exclusive holder wrote it down (a build holding it shared writes nothing)."""
    try:
        info = json.loads(Path(f"{path}.holder").read_text())
    except (OSError, ValueError):
        return "another process"
    return f"{info['what']} (pid {info['pid']}, {info['cwd']}), or a build"

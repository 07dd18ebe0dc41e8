"""File helpers that never leave a half-written artifact behind.

Every artifact is written to a temporary sibling and renamed into place, so
an interrupted download, build or benchmark can never leave a file that
looks complete to Snakemake or to a later cache lookup.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import platform
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

CACHE_ENV = "LLAMABENCH_CACHE"


def cache_root() -> Path:
    """Cache shared by every checkout on this machine (builds, sources, models)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "llamabench"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it over ``target`` on success.

    The temporary name starts with a dot so that globbing for results never
    picks it up, and it is removed when the body raises.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.partial-{os.getpid()}"
    remove(tmp)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        remove(tmp)


def remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def write_json(path: Path, data: Any) -> None:
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """A text file of one line per item, written whole or not at all."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in lines))


def read_text(path: Path) -> str:
    """A log's text, however it is encoded; empty where there is none (nothing was written to it)."""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def cached_json(path: Path, make: Callable[[], Any]) -> Any:
    """The JSON at ``path``, made and written first where there is none: a cache entry keyed by its name."""
    if Path(path).exists():
        return read_json(path)
    found = make()
    write_json(path, found)
    return found


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Inter-process lock, so two checkouts filling one cache entry wait for each other."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def link_or_copy(src: Path, dst: Path) -> None:
    """Put ``src`` at ``dst`` atomically: a hard link where possible (no extra disk), else a copy."""
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)


def make_temp_dir(parent: Path, prefix: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{prefix}-", dir=parent))


def host_info() -> dict[str, Any]:
    """What explains a number about the machine: host, CPU model, core count, OS."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "hostname": socket.gethostname(),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        # The scheduler's job that ran it, on a cluster (platforms.py): what to ask `scontrol show job` about.
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }

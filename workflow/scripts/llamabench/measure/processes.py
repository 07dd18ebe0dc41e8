"""Running external programs: output kept in the rule's log, and stopped with their job on every path."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from llamabench.core.errors import UserError

log = logging.getLogger(__name__)


def current_log() -> Path | None:
    """The file the rule's logging goes to; child output is appended there too."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return Path(handler.baseFilename)
    return None


def run_logged(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    what: str | None = None,
) -> None:
    """Run ``cmd``, streaming its output into the log; a failure names the step and the log."""
    argv = [str(part) for part in cmd]
    log.info("$ %s", shlex.join(argv))
    target = current_log()
    with open(target or os.devnull, "a") as out:
        sink = out if target else None
        # A session of its own, so that an interrupted step can stop the whole tree
        # (cmake -> ninja -> compilers), not just the direct child.
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT if sink else None,
                                start_new_session=True)
        try:
            returncode = proc.wait()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    if returncode != 0:
        raise UserError(f"{what or argv[0]} failed with exit status {returncode}")


def output(cmd: Sequence[str | Path], *, cwd: Path | None = None) -> str:
    """Run a quick query command and return its stdout (stripped); raise on failure."""
    argv = [str(part) for part in cmd]
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise UserError(f"{shlex.join(argv)} failed: {out.stderr.strip() or f'exit status {out.returncode}'}")
    return out.stdout.strip()


@functools.cache
def help_text(exe: Path | str) -> str:
    """What ``exe --help`` prints: llama.cpp's flags changed over time, so what a tool offers is read from it
    (empty where it cannot run; the real run then fails and is recorded with its reason)."""
    try:
        out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout + out.stderr


def require(program: str, hint: str) -> str:
    """Path of ``program`` on PATH or beside this Python (a venv's pip-installed cmake/ninja), or one clear error."""
    found = shutil.which(program) or shutil.which(program, path=str(Path(sys.executable).parent))
    if found is None:
        raise UserError(f"{program} was not found on PATH: {hint}")
    return found


def stop_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM to ``proc``'s process group, SIGKILL after ``grace`` seconds: a server's clean exit, then certainty."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

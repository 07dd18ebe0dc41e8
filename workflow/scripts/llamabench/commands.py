"""Running external programs with their output kept in the rule's log."""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from llamabench.errors import UserError

log = logging.getLogger(__name__)


def current_log() -> Path | None:
    """The file the rule's logging goes to; child output is appended there too."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return Path(handler.baseFilename)
    return None


def run(
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
    if target is None:
        result = subprocess.run(argv, cwd=cwd, env=env)
    else:
        with open(target, "a") as out:
            result = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise UserError(f"{what or argv[0]} failed with exit status {result.returncode}")


def output(cmd: Sequence[str | Path], *, cwd: Path | None = None) -> str:
    """Run a quick query command and return its stdout (stripped); raise on failure."""
    argv = [str(part) for part in cmd]
    return subprocess.run(argv, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def require(program: str, hint: str) -> str:
    """Path of ``program`` on PATH, or a one-sentence error saying how to get it."""
    found = shutil.which(program)
    if found is None:
        raise UserError(f"{program} was not found on PATH: {hint}")
    return found

"""Running external programs: output kept in the rule's log, and never outliving their job.

Every child a job starts goes through :func:`spawn`. A job's Python process can
die in ways no cleanup code sees (the OOM killer, ``kill -9``, a cluster's
time limit), so the kernel does the stopping: the child gets the parent-death
signal (``setpriv --pdeathsig KILL``), a process tree (a build: cmake, ninja,
compilers) runs in a PID namespace of its own whose every process dies with its
first one (``unshare --pid --fork --kill-child``), and the machine lock's
descriptor is inherited, so the lock stays held until the child is gone and no
measurement starts beside an orphan. On the normal path the job's own cleanup
stops its children first (a session of their own: SIGTERM, then SIGKILL, to the
group).
"""

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
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llamabench.core.errors import UserError
from llamabench.measure import console, machine_lock

log = logging.getLogger(__name__)

SETUP_PAD = "LLAMABENCH_SETUP_PAD"
PARENT_DEATH = ("setpriv", "--pdeathsig", "KILL", "--")
PID_NAMESPACE = ("unshare", "--pid", "--fork", "--kill-child")


@functools.cache
def pid_namespace() -> tuple[str, ...]:
    """How to give a process tree a PID namespace here: as root directly, else in a user namespace of its
    own; empty (and said once) where neither is allowed, leaving the parent-death signal of the tree's top."""
    for prefix in (PID_NAMESPACE, (*PID_NAMESPACE[:1], "--user", "--map-root-user", *PID_NAMESPACE[1:])):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            if subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0:
                return prefix
    log.warning("no PID namespace here (unshare --pid is not allowed): a killed job's deeper children may "
                "outlive it")
    return ()


def spawn(cmd: Sequence[str | Path], *, tree: bool = False, **popen: Any) -> subprocess.Popen:
    """Start ``cmd`` so that it cannot outlive this process, whatever kills it; ``tree``: the command starts
    processes of its own, which must die too. ``popen``: subprocess.Popen's arguments (stdout, env, ...).

    Call it from the main thread: the parent-death signal fires when the thread that forked dies.
    """
    if threading.current_thread() is not threading.main_thread():
        log.warning("%s started from a thread: it dies with that thread, not only with the job", cmd[0])
    wrapper = [*PARENT_DEATH, *(pid_namespace() if tree else ())]
    popen.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen([*wrapper, *map(str, cmd)], start_new_session=True, pass_fds=machine_lock.fds(), **popen)


def randomize_setup(pad: int) -> None:
    """Pad the environment that every process this job starts from now on inherits by ``pad`` bytes.

    Where a program's stack starts depends on the size of its environment and arguments, and with it the
    alignment of its hot loops' stack data: the same binary can run measurably faster or slower for nothing but
    that (Mytkowicz et al., "Producing wrong data without doing anything obviously wrong!", ASPLOS 2009). Two
    builds' binaries differ in their paths (results/builds/<name>/bin): a fixed offset between them would be a
    fixed difference every round, which a paired test calls significant between identical builds. A pad drawn
    anew per cell and round (core/plan.py ``Cell.setup_pad``) turns such an offset into spread over rounds,
    which the statistics see (Curtsinger and Berger, "Stabilizer", ASPLOS 2013, randomise layout for the same
    reason).
    """
    os.environ[SETUP_PAD] = "x" * pad


def current_log() -> Path | None:
    """The file the rule's logging goes to; child output is appended there too."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return Path(handler.baseFilename)
    return None


def run(cmd: Sequence[str | Path], timeout: float, env: Mapping[str, str] | None = None,
        ) -> subprocess.CompletedProcess:
    """``cmd``'s exit status and output, like subprocess.run with a timeout, through :func:`spawn`; on a timeout
    (subprocess.TimeoutExpired, with the output so far) or any interruption its whole group is killed first."""
    proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace", env=env)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        stdout, stderr = proc.communicate()
        raise subprocess.TimeoutExpired(cmd, timeout, stdout, stderr) from None
    except BaseException:
        kill_group(proc)
        proc.wait()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL to a spawned child's whole session."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_logged(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    what: str | None = None,
    progress: tuple[str, console.LineReader] | None = None,
) -> None:
    """Run ``cmd``, streaming its output into the log; a failure names the step and the log. ``progress``
    (a name and a reader of the output so far) puts where the tool is on the console while it runs."""
    argv = [str(part) for part in cmd]
    log.info("$ %s", shlex.join(argv))
    target = current_log()
    watching = console.LogWatcher(progress[0], target, progress[1]) if progress else contextlib.nullcontext()
    with watching, open(target or os.devnull, "a") as out:
        sink = out if target else None
        proc = spawn(argv, tree=True, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT if sink else None)
        try:
            returncode = proc.wait()
        except BaseException:
            kill_group(proc)
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

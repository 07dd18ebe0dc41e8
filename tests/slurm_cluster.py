"""A real single-node SLURM for the tests: Debian's munge, slurmctld and slurmd, started as plain processes.

Installed with apt where missing (CI runs as root), configured at /etc/slurm/slurm.conf (the job-step
plugin drops SLURM_CONF, so the system path it must be), two partitions over the one node, no
accounting (the executor's status command is then squeue). Every daemon started here is stopped on
every path; an existing slurm.conf is put back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

CONF = Path("/etc/slurm/slurm.conf")
PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
PARTITIONS = ("cpu-a", "cpu-b")


def unavailable() -> str | None:
    """Why a SLURM cannot be started here, or None."""
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd and writing /etc/slurm/slurm.conf needs root"
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "munged", "sbatch")):
        return None
    if not shutil.which("apt-get"):
        return "SLURM is not installed and there is no apt-get to install it"
    out = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
                         env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        return f"apt-get install {' '.join(PACKAGES)} failed: {out.stderr.strip()[-300:]}"
    return None


def config_text(state: Path) -> str:
    memory = int(psutil.virtual_memory().total / 2**20 * 0.9)
    cpus = os.cpu_count() or 1
    return "\n".join([
        "# written by the llamabench tests (tests/slurm_cluster.py)",
        "ClusterName=llamabench-test", "SlurmctldHost=localhost", "SlurmUser=root", "AuthType=auth/munge",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory", "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none", "MinJobAge=300", "ReturnToService=2",
        f"StateSaveLocation={state}/ctld", f"SlurmdSpoolDir={state}/d", f"SlurmctldPidFile={state}/ctld.pid",
        f"SlurmdPidFile={state}/d.pid", f"SlurmctldLogFile={state}/ctld.log", f"SlurmdLogFile={state}/d.log",
        f"NodeName=localhost CPUs={cpus} RealMemory={memory} State=UNKNOWN",
        f"PartitionName={PARTITIONS[0]} Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        f"PartitionName={PARTITIONS[1]} Nodes=localhost MaxTime=INFINITE State=UP", ""])


def stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def running(state: Path) -> Iterator[dict[str, str]]:
    """munged, slurmctld and slurmd up and the node idle; yields the partitions' names."""
    previous = CONF.read_text() if CONF.exists() else None
    procs: list[subprocess.Popen] = []
    munge_pid = None
    try:
        for sub in ("ctld", "d"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text(config_text(state))
        run_dir = Path("/run/munge")
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(run_dir, "munge", "munge")
        if not Path("/etc/munge/munge.key").exists():
            subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/mungekey", "--create"], check=True)
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged", "--force"], check=True, timeout=30)
        munge_pid = int(Path("/run/munge/munged.pid").read_text())
        for cmd in (["slurmctld", "-D", "-i"], ["slurmd", "-D", "-N", "localhost"]):
            procs.append(subprocess.Popen(cmd, stdout=open(state / f"{cmd[0]}.out", "w"), stderr=subprocess.STDOUT,
                                          start_new_session=True))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
            if out.returncode == 0 and "idle" in out.stdout:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a SLURM daemon exited: see {state}")
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the SLURM node did not become idle in 60 s: see {state}")
        yield {"a": PARTITIONS[0], "b": PARTITIONS[1]}
    finally:
        subprocess.run(["scancel", "--user", "root"], capture_output=True)
        for proc in reversed(procs):
            stop(proc)
        if munge_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(munge_pid, signal.SIGTERM)
        if previous is None:
            CONF.unlink(missing_ok=True)
        else:
            CONF.write_text(previous)

"""RPC workers for real: emulated hosts with capped links, a worker killed mid-cell, a protocol
mismatch refused, an ssh worker through a real sshd, and nothing left behind on any path."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import DEFAULT_CONFIG, RPC_OPTIONS, load_test_config, snakemake, write_config
from llamabench import source
from llamabench.prepare import builds
from llamabench.core import records
from llamabench.measure import rpc_bench, rpc_workers

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake

SMALL = {**DEFAULT_CONFIG["benchmark"]["defaults"], "n_prompt": 32, "n_gen": 8, "repetitions": 2,
         "flash_attn": "auto"}
LOCAL = {"kind": "local", "threads": 1, "device": "CPU"}


def rpc_servers() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "rpc-server -H"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def our_links() -> list[str]:
    return [name for name in os.listdir("/sys/class/net") if name.startswith(("lbh", "lbw"))]


def run_config(workers: list[dict[str, Any]], **topology: Any) -> dict[str, Any]:
    """The small test config with one RPC topology and no other cells worth the time."""
    config = load_test_config()
    config["benchmark"].update(groups={}, repetitions=2)
    config["serving"] = {"builds": [], "scenarios": {}}
    config["rpc"] = {"topologies": {"t": {"client": "cpu-rpc", "workers": workers, **topology}}}
    config["tune"] = {}
    return config


@pytest.mark.skipif(rpc_workers.netns_unavailable() is not None, reason=str(rpc_workers.netns_unavailable()))
def test_netns_bandwidth_sweep_shows_the_link_limit(rpc_build: dict[str, Any], tmp_path: Path) -> None:
    """Two emulated hosts at 100 Mbit/s, 1 Gbit/s and unlimited: tg and pp fall with the bandwidth."""
    workers = [{"kind": "netns", "build": "cpu-rpc", "device": "CPU", "threads": 1},
               {"kind": "netns", "build": "cpu-rpc", "device": "CPU", "threads": 1, "cache": True}]
    write_config(tmp_path, run_config(workers, devices=["RPC0/RPC1"], link_rates=["100mbit", "1gbit", "unlimited"]))
    snakemake(tmp_path, "--cores", "2")
    table = pd.read_csv(tmp_path / "results/rpc_summary.csv").set_index(["link_rate", "devices"])
    assert (table["status"] == "ok").all(), table["error"].tolist()
    remote = table.xs("RPC0/RPC1", level="devices")
    assert remote.loc["100mbit", "tg_ts"] < remote.loc["unlimited", "tg_ts"]
    assert remote.loc["100mbit", "pp_ts"] < remote.loc["unlimited", "pp_ts"]
    assert (remote["mb_per_generated_token"] > 0).all() and (remote["mb_per_prompt_token"] > 0).all()
    # At 100 Mbit/s generation is bound by the link: within reach of the ceiling, never beyond it.
    assert 0.2 < remote.loc["100mbit", "tg_fraction_of_ceiling"] < 1.1
    for path in (tmp_path / "results/rpc").rglob("*.json"):
        cell = records.read(path, "rpc_cell")
        for worker in cell["rpc"]["workers"]:
            assert worker["listening"] == [worker["address"]] and worker["address"].startswith("198.18.")
        if cell["devices"] != "none":
            traffic = cell["rpc"]["traffic"]
            for link in traffic["workers"]:  # the phases account for every byte the link carried
                for direction in ("sent_bytes", "received_bytes"):
                    assert sum(p[direction] for p in link["phases"].values()) == link["total"][direction]
    assert not our_links(), "a veth pair outlived its namespace"
    assert not rpc_servers()


@pytest.fixture()
def local_workers(rpc_build: dict[str, Any], bin_dir: Path) -> list[dict[str, Any]]:
    return [{**LOCAL, "rpc_server": str(bin_dir / rpc_build["binaries"]["rpc_server"])} for _ in range(2)]


def test_a_worker_killed_mid_cell_fails_the_cell(local_workers: list[dict[str, Any]], bin_dir: Path, gemma: Path,
                                                 tmp_path: Path) -> None:
    log = tmp_path / "cell.log"
    params = {**SMALL, "n_prompt": 512, "n_gen": 256, "repetitions": 10}

    def kill_first_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if log.exists() and "prompt run 1/" in log.read_text(errors="replace"):
                os.kill(rpc_servers()[0], signal.SIGKILL)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_first_worker)
    killer.start()
    rpc = {"topology": "t", "link_rate": "unlimited", "devices": "RPC0/RPC1"}
    result = rpc_bench.measure(bin_dir / "llama-bench", gemma, params, local_workers, rpc, log, timeout=300)
    killer.join()
    assert result["status"] == "failed"
    assert "died during the cell" in result["error"] and str(log) in result["error"]
    assert "Starting RPC server" in log.read_text()  # the workers' own output is in the cell's log
    assert not rpc_servers(), "a worker outlived its cell"
    for worker in result["workers"]:
        port = int(worker["address"].rsplit(":", 1)[1])
        assert not rpc_workers.listening(os.getpid(), port), "a worker's port is still bound"


def test_a_worker_that_prints_usage_and_exits_0_is_a_failure(local_workers: list[dict[str, Any]], bin_dir: Path,
                                                             gemma: Path, tmp_path: Path) -> None:
    """The RPC server answers an unknown flag with its usage and exit status 0: still a failed start."""
    wrapper = tmp_path / "rpc-server-with-a-typo"
    wrapper.write_text(f"#!/bin/sh\nexec {local_workers[0]['rpc_server']} --no-such-flag \"$@\"\n")
    wrapper.chmod(0o755)
    rpc = {"topology": "t", "link_rate": "unlimited", "devices": "RPC0"}
    log = tmp_path / "cell.log"
    result = rpc_bench.measure(bin_dir / "llama-bench", gemma, SMALL, [{**LOCAL, "rpc_server": str(wrapper)}], rpc,
                              log, 60)
    assert result["status"] == "failed" and "exited with status 0" in result["error"]
    assert "Usage:" in log.read_text() or "usage" in log.read_text().lower()
    assert not rpc_servers()


@pytest.fixture(scope="module")
def old_rpc_server() -> Path:
    """The mid-2025 tree's rpc-server (another RPC protocol version), from the build cache."""
    old = source.fetch({"kind": "pypi-sdist", "package": "llama-cpp-python", "version": "0.3.14"})
    entry = builds.cached_build(old, "cpu-rpc", RPC_OPTIONS, threads=os.cpu_count() or 2)
    return Path(entry["cache_dir"]) / "bin" / entry["binaries"]["rpc_server"]


def test_a_worker_of_another_protocol_is_refused(old_rpc_server: Path, bin_dir: Path, gemma: Path,
                                                 tmp_path: Path) -> None:
    """A static worker started by hand from another llama.cpp: the client's own handshake refuses it."""
    port = rpc_workers.free_port()
    server = subprocess.Popen([old_rpc_server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        rpc = {"topology": "t", "link_rate": "unlimited", "devices": "RPC0"}
        result = rpc_bench.measure(bin_dir / "llama-bench", gemma, SMALL,
                                  [{"kind": "static", "address": f"127.0.0.1:{port}"}], rpc, tmp_path / "c.log", 60)
    finally:
        server.kill()
        server.wait()
    assert result["status"] == "failed"
    assert "another llama.cpp RPC protocol version is refused" in result["error"]
    assert result["llama_bench"] is None  # refused before the cell ran


def test_binding_beyond_loopback_needs_an_opt_in_before_any_job(tmp_path: Path) -> None:
    write_config(tmp_path, run_config([{**LOCAL, "build": "cpu-rpc", "bind": "0.0.0.0"}]))
    out = snakemake(tmp_path, "-n", check=False)
    assert out.returncode != 0
    assert "rpc.topologies.t.workers[0].bind is 0.0.0.0" in out.stdout + out.stderr
    assert "allow_public_bind: true" in out.stdout + out.stderr
    write_config(tmp_path, run_config([{**LOCAL, "build": "cpu-rpc", "bind": "0.0.0.0"}], allow_public_bind=True))
    out = snakemake(tmp_path, "-n")
    assert "no authentication, no encryption" in out.stdout + out.stderr


def test_a_client_build_without_rpc_is_refused_before_any_job(tmp_path: Path) -> None:
    config = run_config([{**LOCAL, "build": "cpu-rpc"}])
    config["builds"]["cpu"] = {"cmake_options": []}
    config["rpc"]["topologies"]["t"]["client"] = "cpu"
    write_config(tmp_path, config)
    out = snakemake(tmp_path, "-n", check=False)
    assert out.returncode != 0
    assert "rpc.topologies.t.client names build 'cpu', which is built without -DGGML_RPC=ON" in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real OpenSSH server on 127.0.0.1 with a key of this test, stopped afterwards."""
    if os.geteuid() != 0:
        pytest.skip("the ssh worker test starts sshd, which needs root")
    if not shutil.which("sshd", path="/usr/sbin"):
        install = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "openssh-server"],
                                 capture_output=True, text=True, timeout=600,
                                 env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if install.returncode != 0:
            pytest.skip(f"openssh-server could not be installed: {install.stderr.strip()[-300:]}")
    home = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / name)], check=True)
    (home / "authorized_keys").write_text((home / "client_key.pub").read_text())
    os.chmod(home, 0o700)
    port = rpc_workers.free_port()
    config = home / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {home / 'host_key'}\n"
                      f"AuthorizedKeysFile {home / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
                      "PasswordAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    daemon = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not rpc_workers.listening(os.getpid(), port):
            assert daemon.poll() is None, daemon.stderr.read().decode()
            assert time.monotonic() < deadline, "sshd did not start listening"
            time.sleep(0.1)
        yield {"host": "root@127.0.0.1", "ssh_port": port, "identity_file": str(home / "client_key"),
               "known_hosts_file": str(home / "known_hosts")}
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=30)


def test_an_ssh_worker_is_started_over_ssh_and_stopped(sshd: dict[str, Any], rpc_build: dict[str, Any],
                                                       bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    port = rpc_workers.free_port()
    worker = {"kind": "ssh", **sshd, "rpc_server": str(bin_dir / rpc_build["binaries"]["rpc_server"]),
              "port": port, "bind": "127.0.0.1", "device": "CPU", "threads": 1}
    rpc = {"topology": "t", "link_rate": "unlimited", "devices": "RPC0"}
    result = rpc_bench.measure(bin_dir / "llama-bench", gemma, SMALL, [worker], rpc, tmp_path / "cell.log", 300)
    assert result["status"] == "ok", result["error"]
    assert result["rpc_devices"] == {"RPC0": f"127.0.0.1:{port}"}
    assert result["llama_bench"]["records"][0]["devices"] == "RPC0"
    time.sleep(1.0)  # sshd hangs up the remote side when the session closes
    assert not rpc_workers.listening(os.getpid(), port), "the remote worker outlived its cell"
    assert not rpc_servers()


def test_no_worker_survives_a_sigkilled_step(local_workers: list[dict[str, Any]], tmp_path: Path) -> None:
    """Workers die with the step that started them, even when it gets no chance to clean up."""
    code = (
        "import sys, json, time; from pathlib import Path; from llamabench.measure import rpc_workers;"
        "ws = json.loads(sys.argv[1]);"
        "ctx = rpc_workers.running(ws, 'unlimited', Path(sys.argv[2])); ctx.__enter__(); print('up', flush=True);"
        "time.sleep(300)"
    )
    step = subprocess.Popen([sys.executable, "-c", code, json.dumps(local_workers), str(tmp_path / "w.log")],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert step.stdout.readline().strip() == "up"
    assert len(rpc_servers()) == 2
    step.kill()
    step.wait()
    time.sleep(0.5)
    assert not rpc_servers()

"""The RPC workers of a topology: started, waited for, inspected, and stopped on every path.

Four kinds of worker host:

- ``local``: ``ggml-rpc-server`` on 127.0.0.1, on a free port;
- ``netns``: an emulated host on this machine: the server runs in a network
  namespace of its own (``unshare --net``), reached over a veth pair whose two
  ends are both shaped with ``tc tbf`` (tbf shapes only what leaves an
  interface, and during generation most bytes flow back from the worker). The
  namespace is anonymous: it lives as long as the server, so even a SIGKILL
  leaves no namespace and no veth behind. No netem here: links are capped in
  bandwidth only, never delayed;
- ``ssh``: a server started on another machine over ssh from a build already
  there, stopped by closing the session (``-tt``: the remote side gets SIGHUP);
- ``static``: a server the user runs, only connected to.

The RPC server has no authentication or encryption: local workers bind to
loopback, netns workers to their namespace's own address, and anything wider
needs ``allow_public_bind``. A server that prints usage and exits 0 (what it does
on an unknown flag) is a failure like any other early exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llamabench.core import backends, files
from llamabench.core.options import rate_bits
from llamabench.measure import processes

log = logging.getLogger(__name__)

READY_TIMEOUT = 60.0
STATIC_READY_TIMEOUT = 5.0  # a worker the user runs is up already, or not at all
STOP_GRACE = 5.0
# Addresses of emulated hosts: 198.18.0.0/15 is reserved for network benchmarks (RFC 2544).
NETNS_PREFIX = "198.18"
NETNS_TOOLS = ("ip", "tc", "unshare", "nsenter")


class WorkerFailed(Exception):
    """A worker did not come up, went away, or is not what the client speaks to."""


def unavailable(workers: list[dict[str, Any]]) -> str | None:
    """Why these workers cannot run here, in one sentence, or None: only netns workers need more than a port."""
    return netns_unavailable() if any(w["kind"] == "netns" for w in workers) else None


def netns_unavailable() -> str | None:
    """Why netns workers cannot run here, in one sentence, or None."""
    if os.geteuid() != 0:
        return "netns workers need root (network namespaces, veth pairs, tc)"
    missing = [tool for tool in NETNS_TOOLS if not shutil.which(tool)]
    if missing:
        return f"netns workers need {', '.join(missing)} (Debian: apt-get install iproute2 util-linux)"
    return None


def server_args(spec: dict[str, Any], host: str, port: int) -> list[str]:
    args = ["-H", host, "-p", str(port), "-t", str(spec["threads"])]
    if spec.get("device"):
        args += ["-d", spec["device"]]
    if spec.get("cache"):
        args.append("-c")
    return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running(workers: list[dict[str, Any]], link_rate: str, log_path: Path) -> Iterator[list[dict[str, Any]]]:
    """Start every worker, wait until each accepts connections, yield their facts; stop them all on exit.

    Each worker spec carries ``kind`` and its settings, and for local and netns
    workers ``rpc_server`` (the binary of the build it names).
    """
    started: list[dict[str, Any]] = []
    try:
        for index, spec in enumerate(workers):
            worker = _start(index, spec, link_rate, log_path)
            started.append(worker)
        for worker in started:
            _wait_ready(worker)
            # Read in the worker's own network namespace; an ssh worker's sockets are on its host.
            in_namespace = worker.get("ns_pid") or (worker["pid"] if worker["kind"] == "local" else None)
            port = int(worker["address"].rsplit(":", 1)[1])
            worker["listening"] = listening(in_namespace, port) if in_namespace else None
        yield started
    finally:
        for worker in reversed(started):
            stop(worker)


def _start(index: int, spec: dict[str, Any], link_rate: str, log_path: Path) -> dict[str, Any]:
    kind = spec["kind"]
    worker: dict[str, Any] = {"index": index, "kind": kind, "spec": spec, "proc": None, "pid": None,
                              "iface": None, "log": str(log_path), "link_rate": None}
    env = {**os.environ, **(spec.get("environment") or {})}
    if spec.get("cache"):
        env["LLAMA_CACHE"] = str(files.cache_root() / "rpc-tensor-cache")
    if kind == "static":
        worker["address"] = spec["address"]
        return worker
    if kind == "local":
        port = free_port()
        cmd = [spec["rpc_server"], *server_args(spec, spec.get("bind", "127.0.0.1"), port)]
        worker["address"] = f"127.0.0.1:{port}"
    elif kind == "netns":
        host_ip, worker_ip = netns_addresses(index)
        port = 50052
        # The server waits until its namespace has its address, then becomes the namespace's only process.
        script = (f"while ! ip -o addr show | grep -q ' {worker_ip}/'; do sleep 0.05; done; "
                  f"exec {shlex.join([spec['rpc_server'], *server_args(spec, worker_ip, port)])}")
        cmd = ["unshare", "--net", "--fork", "--kill-child", "sh", "-c", script]
        worker["address"] = f"{worker_ip}:{port}"
        worker["link_rate"] = link_rate
    elif kind == "ssh":
        port = spec["port"]
        cmd = ["ssh", "-tt", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
               "-p", str(spec.get("ssh_port", 22))]
        if spec.get("identity_file"):
            cmd += ["-i", os.path.expanduser(spec["identity_file"])]
        if spec.get("known_hosts_file"):
            cmd += ["-o", f"UserKnownHostsFile={os.path.expanduser(spec['known_hosts_file'])}"]
        remote = [spec["rpc_server"], *server_args(spec, spec.get("bind", "127.0.0.1"), port)]
        cmd += [spec["host"], "exec " + shlex.join(remote)]
        worker["address"] = f"{spec.get('address') or spec['host'].split('@')[-1]}:{port}"
    else:  # the schema allows no other kind
        raise WorkerFailed(f"unknown worker kind {kind!r}")
    worker["command_line"] = shlex.join(cmd)
    log.info("worker %d ($ %s)", index, worker["command_line"])
    with open(log_path, "a") as out:
        # Dies with the step, whatever kills it; a netns worker's namespace and server go with it.
        worker["proc"] = processes.spawn(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    worker["pid"] = worker["proc"].pid
    if kind == "netns":
        _link(worker, index, link_rate)
    return worker


def netns_addresses(index: int) -> tuple[str, str]:
    """The host end and the worker end of worker ``index``'s /30, distinct per step process."""
    subnet = (os.getpid() % 64) * 4 + index
    return f"{NETNS_PREFIX}.{subnet}.1", f"{NETNS_PREFIX}.{subnet}.2"


def _link(worker: dict[str, Any], index: int, link_rate: str) -> None:
    """Move one end of a fresh veth pair into the worker's namespace, address both ends, shape both."""
    proc = worker["proc"]
    deadline = time.monotonic() + 10
    while not (children := _children(proc.pid)):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise WorkerFailed(f"worker {index}: unshare did not start its namespace (see {worker['log']})")
        time.sleep(0.02)
    ns_pid = children[0]
    host_if, ns_if = f"lbh{os.getpid()}{index}"[:15], f"lbw{os.getpid()}{index}"[:15]
    host_ip, worker_ip = netns_addresses(index)
    worker.update(iface=host_if, ns_pid=ns_pid)
    ns = ["nsenter", "-t", str(ns_pid), "-n"]
    steps = [
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
        ["ip", "link", "set", ns_if, "netns", str(ns_pid)],
        ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        [*ns, "ip", "link", "set", "lo", "up"],
        [*ns, "ip", "link", "set", ns_if, "up"],
    ]
    bits = rate_bits(link_rate)
    if bits:
        # burst: 10 ms at the rate, at least a few full frames, so the cap is the rate and not the bucket.
        shape = ["root", "tbf", "rate", link_rate, "burst", str(max(bits // 800, 32_000)), "latency", "100ms"]
        steps += [["tc", "qdisc", "add", "dev", host_if, *shape], [*ns, "tc", "qdisc", "add", "dev", ns_if, *shape]]
    steps.append([*ns, "ip", "addr", "add", f"{worker_ip}/30", "dev", ns_if])  # last: the server waits for it
    for cmd in steps:
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise WorkerFailed(f"worker {index}: {shlex.join(cmd)} failed: {out.stderr.strip()}")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _wait_ready(worker: dict[str, Any]) -> None:
    """Until the server accepts a TCP connection; a server that exits meanwhile (even with 0) has failed."""
    host, port = worker["address"].rsplit(":", 1)
    wait = STATIC_READY_TIMEOUT if worker["kind"] == "static" else READY_TIMEOUT
    deadline = time.monotonic() + wait
    while True:
        proc = worker["proc"]
        if proc is not None and proc.poll() is not None:
            raise WorkerFailed(f"worker {worker['index']} ({worker['kind']}) exited with status {proc.returncode} "
                               f"before it accepted connections; its log: {worker['log']}")
        with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=2):
            return
        if time.monotonic() > deadline:
            raise WorkerFailed(f"worker {worker['index']} ({worker['kind']}) at {worker['address']} did not accept "
                               f"connections within {wait:.0f} s")
        time.sleep(0.1)


def alive(worker: dict[str, Any]) -> bool:
    return worker["proc"] is None or worker["proc"].poll() is None


def stop(worker: dict[str, Any]) -> None:
    """SIGTERM then SIGKILL to the worker's process group; a netns link goes with its namespace."""
    if worker["proc"] is not None:
        processes.stop_group(worker["proc"], STOP_GRACE)
    if worker.get("iface") and Path(f"/sys/class/net/{worker['iface']}").exists():
        time.sleep(0.2)  # the kernel removes the pair with the namespace, shortly after
        if Path(f"/sys/class/net/{worker['iface']}").exists():
            subprocess.run(["ip", "link", "del", worker["iface"]], capture_output=True)


def counters(workers: list[dict[str, Any]]) -> list[dict[str, int] | None]:
    """Bytes and packets each netns worker's link carried so far, seen from the host end."""
    found = []
    for worker in workers:
        if not worker.get("iface"):
            found.append(None)
            continue
        base = Path(f"/sys/class/net/{worker['iface']}/statistics")
        try:
            found.append({name: int((base / name).read_text()) for name in
                          ("tx_bytes", "rx_bytes", "tx_packets", "rx_packets")})
        except OSError:
            found.append(None)  # the worker (and its link) is gone
    return found


def listening(pid: int, port: int) -> list[str]:
    """The addresses listening on ``port`` in ``pid``'s network namespace, from that namespace's socket table."""
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state != "0A" or int(local.split(":")[1], 16) != port:  # 0A: LISTEN
                continue
            addr_hex, port_hex = local.split(":")
            raw = bytes.fromhex(addr_hex)
            # /proc stores each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.append(f"{socket.inet_ntop(family, raw)}:{int(port_hex, 16)}")
    return sorted(found)


def rpc_devices(client_tools: list[Path], addresses: list[str]) -> dict[str, str]:
    """The client's own handshake with every worker: {device name: endpoint}, as the client build names them
    (``RPC0``, ``RPC1``, ...; ``RPC[host:port]`` in mid-2025 trees).

    The first of ``client_tools`` that lists devices does it (mid-2025 llama-bench
    cannot; its one-shot tool can). The RPC handshake compares protocol versions
    only; a worker of another protocol makes the client fail or list fewer
    devices, and that is refused here.
    """
    text, returncode = "", 1
    for tool in client_tools:
        cmd = [str(tool), "--rpc", ",".join(addresses), "--list-devices"]
        try:
            out = processes.run(cmd, timeout=120)
        except subprocess.TimeoutExpired as err:
            raise WorkerFailed(f"the handshake with the workers did not finish: {err}") from err
        text, returncode = out.stdout + out.stderr, out.returncode
        if "Available devices" in text:
            break
    devices = {}
    for name, description in re.findall(r"^\s+(RPC\d+|RPC\[[^\]]+\]): (\S+)", text, flags=re.MULTILINE):
        devices[name] = name[4:-1] if name.startswith("RPC[") else description
    missing = [a for a in addresses if a not in set(devices.values())]
    if returncode != 0 or missing:
        detail = "; ".join(line.strip() for line in text.splitlines() if "error" in line.lower() or
                           "mismatch" in line.lower())[-400:]
        raise WorkerFailed(f"the client build's handshake did not reach {', '.join(missing) or 'every worker'} "
                           f"(a worker of another llama.cpp RPC protocol version is refused): {detail}")
    return devices


def resolve(spec: dict[str, Any], builds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A worker spec with the path of its build's RPC server and that build's environment (the GPU devices its
    backend sees), for the kinds the workflow starts from its builds."""
    if spec["kind"] in ("local", "netns"):
        build = builds[spec["build"]]
        return {**spec, "rpc_server": str(Path(build["bin_dir"]) / build["binaries"]["rpc_server"]),
                "environment": dict(build.get("environment") or {}), "device": device_of(spec, build)}
    return dict(spec)


def device_of(spec: dict[str, Any], build: dict[str, Any]) -> str | None:
    """A worker's ``-d`` device: as configured, or for ``GPU<i>`` the i-th GPU of its build's own
    ``--list-devices`` (CUDA0, Vulkan0, ROCm0...), so that one topology serves every GPU backend. A build that
    lists no such GPU keeps ``GPU<i>``: its cell is skipped (backends.unusable) or the server says why."""
    match = re.fullmatch(r"GPU(\d+)", spec.get("device") or "")
    found = backends.gpu_devices(backends.of(build["options"]), build["devices"]["devices"]) if match else []
    return found[int(match[1])]["name"] if match and int(match[1]) < len(found) else spec.get("device")


def facts(worker: dict[str, Any]) -> dict[str, Any]:
    spec = worker["spec"]
    return {"index": worker["index"], "kind": worker["kind"], "address": worker["address"],
            "build": spec.get("build"), "device": spec.get("device"), "threads": spec.get("threads"),
            "cache": bool(spec.get("cache")), "link_rate": worker["link_rate"], "interface": worker["iface"],
            "listening": worker.get("listening"), "command_line": worker.get("command_line")}

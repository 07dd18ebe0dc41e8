"""llama-server, served and measured: streaming requests on loopback, latency as a user sees it.

llama-bench measures throughput; a user waits on a server. A serving cell starts
``llama-server`` with every parameter explicit (its defaults changed across
versions, and newer servers adjust unset ones to fit memory), waits until
``/health`` answers 200, warms up, then sends ``requests`` streaming completions
with ``concurrency`` of them in flight, and records per request the client-side
time to first token, every inter-token gap, the end-to-end latency and the
server's own ``timings``. The server is stopped on every path.

Prompts are token lists of exactly ``prompt_tokens`` tokens, cut from the
server's own ``/tokenize`` of a fixed text with ``add_special: true`` (so the
count includes the BOS a completion adds to a text prompt) and sent as tokens:
the server adds nothing to a token prompt, and its ``prompt_n`` must equal the
count. Each request's prompt differs from its first token on, and
``cache_prompt: false`` (plus ``--cache-ram 0`` where the server has a RAM
prompt cache) keeps cold cells cold: ``cache_n == 0`` is checked where reported.
A ``warm`` scenario shares a prefix, primed by the warm-up, and is labelled so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
import socket
import subprocess
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from llamabench.core import axes, files, progress
from llamabench.core.errors import Unsupported
from llamabench.core.status import Status
from llamabench.measure import interference, machine_lock, processes, sampler

log = logging.getLogger(__name__)

# Flags only some versions have, added where --help lists them: no fitting of unset
# parameters to memory, and no RAM prompt cache (which would make cold prompts warm).
OPTIONAL_FLAGS = {"-fit": "off", "-cram": "0"}
# Warm-up: every slot, at the measured prompt length, until two TTFTs in a row agree within STEADY.
WARMUP_MAX, STEADY = 5, 0.10
READY_TIMEOUT = 300.0
STOP_GRACE = 10.0
# A fixed text to cut prompts from: plain words tokenize alike in every vocabulary.
PROMPT_TEXT = (
    "The history of computing is a story of machines that learned to follow instructions faster and more "
    "reliably than the people who built them. Early calculators used gears and levers, later ones relays "
    "and vacuum tubes, and modern processors pack billions of transistors onto a chip the size of a stamp. "
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(exe: Path, model: Path, params: Mapping[str, Any], port: int) -> list[str]:
    """llama-server bound to loopback only, every server parameter explicit, spelled for this tree."""
    help_text = processes.help_text(exe)
    cmd = [str(exe), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "--metrics",
           *axes.arguments(params, axes.SERVING, axes.LLAMA_SERVER, help_text)]
    for flag, value in OPTIONAL_FLAGS.items():
        if flag == "-cram" and params["cache"] == "warm":
            continue
        if f"{flag}," in help_text or f"{flag} " in help_text:
            cmd += [flag, value]
    return cmd


class ServerFailed(Exception):
    """llama-server did not come up or went away: the cell fails with the server's log."""


def start(cmd: list[str], log_path: Path) -> subprocess.Popen:
    log.info("$ %s", shlex.join(cmd))
    with open(log_path, "a") as out:
        # Stopped by this step's cleanup on every path, and by the kernel when the step is killed.
        return processes.spawn(cmd, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(base: str, proc: subprocess.Popen, deadline: float) -> None:
    """Until /health says 200 (503 while loading); a server that exits meanwhile has failed."""
    while True:
        if proc.poll() is not None:
            raise ServerFailed(f"llama-server exited with status {proc.returncode} before it was ready")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{base}/health", timeout=5).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise ServerFailed("llama-server was not ready before the timeout")
        time.sleep(0.1)


def make_prompts(session: requests.Session, base: str, n_tokens: int, count: int, shared_prefix: bool,
                 ) -> list[list[int]]:
    """``count`` token lists of exactly ``n_tokens`` tokens; distinct from the first token unless ``shared_prefix``."""
    prompts = []
    for index in range(count):
        head = "" if shared_prefix else f"Request {index}. "
        text = head + PROMPT_TEXT * (n_tokens // 20 + 2) + ("" if not shared_prefix else f" Request {index}.")
        tokens = session.post(f"{base}/tokenize", json={"content": text, "add_special": True}, timeout=60)
        tokens.raise_for_status()
        ids = tokens.json()["tokens"]
        if shared_prefix:  # keep the distinct tail, so only the prefix is shared
            ids = ids[: n_tokens - 4] + ids[-4:]
        prompts.append(ids[:n_tokens])
    return prompts


def complete(session: requests.Session, base: str, prompt: list[int], max_tokens: int, cache_prompt: bool,
             slot: int | None = None) -> dict[str, Any]:
    """One streaming completion, timed on the client's clock from sending to each chunk (``slot``: on that one)."""
    body = {"prompt": prompt, "n_predict": max_tokens, "stream": True, "cache_prompt": cache_prompt,
            "ignore_eos": True, "temperature": 0.0, "seed": 42, **({"id_slot": slot} if slot is not None else {})}
    sent = time.perf_counter()
    arrivals: list[float] = []
    timings: dict[str, Any] = {}
    with session.post(f"{base}/completion", json=body, stream=True, timeout=600) as resp:
        resp.raise_for_status()
        # chunk_size=None: lines as they arrive, not after a fixed number of bytes.
        for line in resp.iter_lines(chunk_size=None):
            if not line.startswith(b"data: "):
                continue
            now = time.perf_counter()
            chunk = json.loads(line[6:])
            if chunk.get("content"):
                arrivals.append(now)
            if chunk.get("timings"):
                timings = chunk["timings"]
            if chunk.get("stop"):
                break
    end = time.perf_counter()
    if not arrivals:
        raise ServerFailed("a completion streamed no text")
    return {
        "prompt_tokens": len(prompt),
        "ttft_ms": (arrivals[0] - sent) * 1000,
        "itl_ms": [(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:])],
        "e2e_ms": (end - sent) * 1000,
        "text_chunks": len(arrivals),
        "timings": timings,
    }


def warm_up(session: requests.Session, base: str, prompts: list[list[int]], params: Mapping[str, Any],
            ) -> list[dict[str, Any]]:
    """Warm every slot (``id_slot``) at the measured prompt length until steady: the server otherwise sends the
    first measured request of an unrelated prompt to its least recently used slot, a cold one. Each slot gets
    requests until its last two TTFTs agree within STEADY (at most WARMUP_MAX); a warm scenario's prefix is
    primed on every slot. Returns what each warm-up request took, recorded apart from the measured ones."""
    warm, unused = params["cache"] == "warm", iter(prompts)
    done = []
    for slot in range(params["parallel"]):
        ttfts: list[float] = []
        while len(ttfts) < 2 or (len(ttfts) < WARMUP_MAX and abs(ttfts[-1] - ttfts[-2]) > STEADY * ttfts[-2]):
            request = complete(session, base, next(unused), params["max_tokens"], warm, slot=slot)
            ttfts.append(request["ttft_ms"])
            done.append({"slot": slot, "ttft_ms": request["ttft_ms"], "e2e_ms": request["e2e_ms"],
                         "timings": request["timings"]})
    return done


def run_level(base: str, prompts: list[list[int]], max_tokens: int, concurrency: int, cache_prompt: bool,
              ) -> tuple[list[dict[str, Any]], float]:
    """All prompts, ``concurrency`` in flight at a time; the requests and the level's wall time."""
    sessions = [requests.Session() for _ in range(concurrency)]
    pool = ThreadPoolExecutor(max_workers=concurrency)
    start_time = time.perf_counter()
    try:
        futures = [pool.submit(complete, sessions[i % concurrency], base, prompt, max_tokens, cache_prompt)
                   for i, prompt in enumerate(prompts)]
        done = [future.result() for future in futures]
    finally:
        # An interrupted level must not wait for its queued requests: drop them; the
        # caller then stops the server, which ends the requests in flight.
        pool.shutdown(wait=False, cancel_futures=True)
    wall = time.perf_counter() - start_time
    for session in sessions:
        session.close()
    return done, wall


def measure(exe: Path, model: Path, params: Mapping[str, Any], log_path: Path, timeout: float = 600,
            skip: str | None = None, gpus: bool = False, interval_s: float = 0.1,
            skip_status: Status = Status.SKIPPED) -> dict[str, Any]:
    """Serve, warm up, measure; a failure is recorded (status, error), never raised.

    ``skip``: why this cell is not run at all (a CUDA build on a host without a GPU; with ``skip_status``
    predicted_out_of_memory, a prediction that it cannot fit). The sampler runs throughout (with ``gpus``,
    the node's GPUs too), marking the load, the warm-up and the measured requests.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"command": [], "command_line": "", "start": files.now_iso(), "status": Status.FAILED,
                              "error": None, "requests": [], "props": None, "server_exit_status": None}
    if skip:
        log.warning("skipped: %s", skip)
        return {**result, "status": skip_status, "error": skip, "end": files.now_iso()}
    deadline = time.monotonic() + timeout
    with machine_lock.held(f"llama-server on port {port}"), sampler.sampling(interval_s, gpus) as samples:
        _serve(exe, model, params, log_path, port, base, deadline, result, samples)
    result["samples"] = samples.result()
    if result["status"] != Status.OK:
        result["server_log_tail"] = _tail(log_path)
    return result


def _serve(exe: Path, model: Path, params: Mapping[str, Any], log_path: Path, port: int, base: str, deadline: float,
           result: dict[str, Any], samples: sampler.Sampler) -> None:
    proc = None
    try:
        cmd = server_command(exe, model, params, port)
        result.update(command=cmd, command_line=shlex.join(cmd))
        samples.mark("load")
        proc = start(cmd, log_path)
        wait_ready(base, proc, min(deadline, time.monotonic() + READY_TIMEOUT))
        warm = params["cache"] == "warm"
        with requests.Session() as session:
            props = session.get(f"{base}/props", timeout=30)
            result["props"] = _effective_settings(props.json() if props.ok else {})
            warmups = params["parallel"] * WARMUP_MAX
            prompts = make_prompts(session, base, params["prompt_tokens"], params["requests"] + warmups, warm)
            samples.mark("warmup")
            result["warmup"] = warm_up(session, base, prompts[params["requests"]:], params)
        samples.mark(progress.REQUESTS)
        seen, server_seconds = interference.Window(), interference.tree_seconds(proc.pid)
        before = server_seconds()
        done, wall = run_level(base, prompts[:params["requests"]], params["max_tokens"], params["concurrency"], warm)
        seen.measured(server_seconds() - before)
        result["interference"] = seen.result(samples.gpu_others({proc.pid}))
        samples.mark("stop")
        if time.monotonic() > deadline:
            raise ServerFailed("the cell did not finish within serving.timeout")
        result.update(requests=done, wall_s=wall, status=Status.OK)
        result["error"] = check(done, params)
        if result["error"]:
            result["status"] = Status.FAILED
    except Unsupported as err:
        result.update(status=Status.SKIPPED, error=str(err))
    except (ServerFailed, requests.RequestException, ValueError, KeyError) as err:
        result["error"] = f"{err}; server log: {log_path}"
    finally:
        if proc is not None:
            processes.stop_group(proc, STOP_GRACE)
            result["server_exit_status"] = proc.returncode
        result["end"] = files.now_iso()


def check(done: list[dict[str, Any]], params: Mapping[str, Any]) -> str | None:
    """What makes a measured cell wrong rather than slow: a prompt not of its length, a cold prompt served warm."""
    for req in done:
        timings = req["timings"]
        if "prompt_n" not in timings:
            return "the server reported no timings"
        cached = timings.get("cache_n", 0)
        if params["cache"] == "cold" and cached:
            return f"a cold request reused {cached} cached prompt tokens"
        if timings["prompt_n"] + cached != req["prompt_tokens"]:
            return f"the server processed {timings['prompt_n']} prompt tokens, {req['prompt_tokens']} were sent"
    return None


def _effective_settings(props: dict[str, Any]) -> dict[str, Any]:
    """What the server says it runs with (its slots, context, generation defaults)."""
    keep = ("total_slots", "build_info", "model_path", "default_generation_settings", "n_ctx")
    settings = {key: props[key] for key in keep if key in props}
    generation = settings.get("default_generation_settings", {})
    settings["default_generation_settings"] = {k: v for k, v in generation.items() if not isinstance(v, (list, dict))}
    return settings


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""

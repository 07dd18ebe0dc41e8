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

Requests arrive closed (``concurrency`` in flight) or open, on a seeded schedule
at an offered rate (measure/arrivals.py); lengths are fixed, spread or a
dataset's. Every text chunk's arrival is kept (``token_ms``, with the server's own
clock beside it from ``timings_per_token``), so any latency metric can be
recomputed; a chunk without text is not a token. The client's own CPU time is
recorded beside the server's: on a small machine they share the cores.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from llamabench.core import axes, files, phases
from llamabench.core.errors import Unsupported
from llamabench.core.sessions import conversational
from llamabench.core.status import Status
from llamabench.measure import arrivals, interference, machine_lock, processes, sampler, sessions

log = logging.getLogger(__name__)

# Flags only some versions have, added where --help lists them: no fitting of unset
# parameters to memory, and no RAM prompt cache (which would make cold prompts warm).
OPTIONAL_FLAGS = {"-fit": "off", "-cram": "0"}
# Warm-up: every slot, at the measured prompt length, until two TTFTs in a row agree within STEADY.
WARMUP_MAX, STEADY = 5, 0.10
READY_TIMEOUT = 300.0
# How often /metrics is read while requests run: light beside a request, fine enough for a queue's length.
METRICS_INTERVAL_S = 0.5
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
        if flag == "-cram" and (params["cache"] == "warm" or params.get("prompt_cache") == "on"
                                or "cache_ram" in params):
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


def tokenize(session: requests.Session, base: str, text: str, special: bool = True) -> list[int]:
    """The server's own tokens of ``text``, BOS included where a completion adds one (``special``: a prompt's
    start, not a later turn)."""
    tokens = session.post(f"{base}/tokenize", json={"content": text, "add_special": special}, timeout=60)
    tokens.raise_for_status()
    return tokens.json()["tokens"]


def make_prompts(session: requests.Session, base: str, lengths: list[int], shared_prefix: bool,
                 texts: list[str] | None = None, first: int = 0) -> list[list[int]]:
    """A token list of exactly ``lengths[i]`` tokens per request (``texts``: a dataset's, cut to at most that);
    distinct from the first token unless ``shared_prefix`` (numbered from ``first``: the warm-up's follow the
    measured ones)."""
    prompts = []
    for index, n_tokens in enumerate(lengths, start=first):
        if texts is not None:
            prompts.append(tokenize(session, base, texts[index - first])[:n_tokens])
            continue
        head = "" if shared_prefix else f"Request {index}. "
        text = head + PROMPT_TEXT * (n_tokens // 20 + 2) + ("" if not shared_prefix else f" Request {index}.")
        ids = tokenize(session, base, text)
        if shared_prefix:  # keep the distinct tail, so only the prefix is shared
            ids = ids[: n_tokens - 4] + ids[-4:]
        prompts.append(ids[:n_tokens])
    return prompts


def cache_prompt(params: Mapping[str, Any]) -> bool | None:
    """What a request says of the prompt cache: reuse for warm prompts, none for cold ones; None (left out, the
    server's --cache-prompt decides) where the cell sets the server's prompt_cache."""
    if axes.value(params, "prompt_cache", axes.SERVING) != "request":
        return None
    return params["cache"] == "warm"


def complete(session: requests.Session, base: str, prompt: list[int], max_tokens: int, cache: bool | None,
             slot: int | None = None, tokens: bool = False) -> dict[str, Any]:
    """One streaming completion, timed on the client's clock from sending to each chunk (``slot``: on that one;
    ``cache``: the request's cache_prompt, None to leave it to the server; ``tokens``: keep the generated token
    ids, which a conversation's next turn resends). ``sent_at`` is the client's clock (time.perf_counter) when it
    was sent: the level turns it into an offset.

    ``return_progress`` makes the server send a chunk when the prompt starts processing, carrying the ms since
    (``prompt_progress.time_ms``): the time before it, less that, is the wait in the server's queue (``wait_ms``),
    apart from the prefill (``timings.prompt_ms``). A server without it sends none: no wait is recorded."""
    body = {"prompt": prompt, "n_predict": max_tokens, "stream": True, "timings_per_token": True,
            "return_progress": True, "ignore_eos": True, "temperature": 0.0, "seed": 42,
            **({"id_slot": slot} if slot is not None else {}), **({"return_tokens": True} if tokens else {}),
            **({"cache_prompt": cache} if cache is not None else {})}
    sent = time.perf_counter()
    arrivals: list[float] = []
    server_ms: list[float | None] = []
    generated: list[int] = []
    timings: dict[str, Any] = {}
    wait_ms = served_by = None
    with session.post(f"{base}/completion", json=body, stream=True, timeout=600) as resp:
        resp.raise_for_status()
        # chunk_size=None: lines as they arrive, not after a fixed number of bytes.
        for line in resp.iter_lines(chunk_size=None):
            if not line.startswith(b"data: "):
                continue
            now = time.perf_counter()
            chunk = json.loads(line[6:])
            if wait_ms is None and (progress := chunk.get("prompt_progress")):
                wait_ms = max(0.0, (now - sent) * 1000 - progress.get("time_ms", 0.0))
            if chunk.get("timings"):
                timings = chunk["timings"]
            served_by = chunk.get("id_slot", served_by)
            # A partial character's token too (the history needs it); progress chunks carry a placeholder [0],
            # the final one no token of its own.
            if not chunk.get("stop") and "prompt_progress" not in chunk:
                generated += chunk.get("tokens") or []
            if chunk.get("content"):  # a chunk without text (a partial character, the final one) is no token
                arrivals.append(now)
                server_ms.append(_server_clock(chunk.get("timings")))
            if chunk.get("stop"):
                break
    end = time.perf_counter()
    if not arrivals:
        raise ServerFailed("a completion streamed no text")
    cached = timings.get("cache_n", 0)
    return {
        "prompt_tokens": len(prompt),
        "max_tokens": max_tokens,
        "sent_at": sent,
        "ttft_ms": (arrivals[0] - sent) * 1000,
        "itl_ms": [(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:])],
        "e2e_ms": (end - sent) * 1000,
        "text_chunks": len(arrivals),
        "token_ms": [round((t - sent) * 1000, 3) for t in arrivals],
        "token_server_ms": server_ms,
        "timings": timings,
        "slot": served_by,
        "wait_ms": None if wait_ms is None else round(wait_ms, 3),
        "prefill_ms": timings.get("prompt_ms"),
        # the share of the prompt the server took from its cache (prompt_n excludes the cached tokens)
        "reused_share": round(cached / len(prompt), 4) if prompt else 0.0,
        **({"generated": generated} if tokens else {}),
    }


def _server_clock(timings: Mapping[str, Any] | None) -> float | None:
    """The server's own time into a request at one chunk: its prompt time plus its generation time so far."""
    if not timings or "prompt_ms" not in timings:
        return None
    return round(timings["prompt_ms"] + timings.get("predicted_ms", 0.0), 3)


def warm_up(session: requests.Session, base: str, prompts: list[list[int]], params: Mapping[str, Any],
            ) -> list[dict[str, Any]]:
    """Warm every slot (``id_slot``) at the measured prompt length until steady: the server otherwise sends the
    first measured request of an unrelated prompt to its least recently used slot, a cold one. Each slot gets
    requests until its last two TTFTs agree within STEADY (at most WARMUP_MAX); a warm scenario's prefix is
    primed on every slot. Returns what each warm-up request took, recorded apart from the measured ones."""
    unused = iter(prompts)
    done = []
    for slot in range(params["parallel"]):
        ttfts: list[float] = []
        while len(ttfts) < 2 or (len(ttfts) < WARMUP_MAX and abs(ttfts[-1] - ttfts[-2]) > STEADY * ttfts[-2]):
            request = complete(session, base, next(unused), params["max_tokens"], cache_prompt(params), slot=slot)
            ttfts.append(request["ttft_ms"])
            done.append({"slot": slot, "ttft_ms": request["ttft_ms"], "e2e_ms": request["e2e_ms"],
                         "timings": request["timings"]})
    return done


def run_level(base: str, conversations: list[dict[str, Any]], concurrency: int, cache: bool | None,
              send_at: list[float] | None = None, start: float | None = None) -> tuple[list[dict[str, Any]], float]:
    """Every conversation (measure/sessions.py; a lone request is one of one turn), at most ``concurrency`` in
    flight: closed (``send_at`` None: the next begins as one ends), on the schedule ``send_at`` (s from the start),
    or a trace's, each turn at its own time. A conversation's turns follow each other, after the user's think time
    or at the turn's time (if its previous turn ended later, the turn is ``held_s`` late), each resending the
    history and its answer's tokens. Each request gets its ``session`` and ``turn``, ``scheduled_s`` (open),
    ``sent_s`` and ``done_s`` from the level's start (``start`` on time.perf_counter, now if None: the server's
    CPU readings count from it too); returns the requests and the level's wall time."""
    local = threading.local()
    opened: list[requests.Session] = []
    keep = any(len(c["turns"]) > 1 for c in conversations)
    replayed = any(step["at_s"] is not None for c in conversations for step in c["turns"])

    def converse(conversation: dict[str, Any]) -> list[dict[str, Any]]:
        if not hasattr(local, "session"):  # a session per client thread: requests' sessions are not thread-safe
            local.session = requests.Session()
            opened.append(local.session)
        history: list[int] = []
        done = []
        for index, step in enumerate(conversation["turns"]):
            held = None
            if index and step["at_s"] is not None:
                wait = start_time + step["at_s"] - time.perf_counter()
                held = round(max(0.0, -wait), 6)
                time.sleep(max(0.0, wait))
            elif index and step["think_s"]:
                time.sleep(step["think_s"])
            prompt = step["new"] if step["fresh"] else history + step["new"]
            request = complete(local.session, base, prompt, step["max_tokens"], cache, tokens=keep)
            request.update(done_at=time.perf_counter(), session=conversation["session"], turn=index + 1)
            if step["at_s"] is not None:
                request.update(scheduled_s=round(step["at_s"], 6), held_s=held or 0.0)
            history = prompt + request.pop("generated", [])
            done.append(request)
        return done

    workers = min(len(conversations), sessions.TRACE_THREADS) if replayed else concurrency
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    start_time = time.perf_counter() if start is None else start
    try:
        futures = []
        for i, conversation in enumerate(conversations):
            at = send_at[i] if send_at is not None else conversation["turns"][0]["at_s"]
            if at is not None and (wait := start_time + at - time.perf_counter()) > 0:
                time.sleep(wait)
            futures.append(pool.submit(converse, conversation))
        done = [future.result() for future in futures]
    finally:
        # An interrupted level must not wait for its queued conversations: drop them; the
        # caller then stops the server, which ends the requests in flight.
        pool.shutdown(wait=False, cancel_futures=True)
    wall = time.perf_counter() - start_time
    for session in opened:
        session.close()
    for i, turns in enumerate(done):
        if send_at is not None:
            turns[0]["scheduled_s"] = round(send_at[i], 6)
        for request in turns:
            request["sent_s"] = round(request.pop("sent_at") - start_time, 6)
            request["done_s"] = round(request.pop("done_at") - start_time, 6)
    return [request for turns in done for request in turns], wall


def measure(exe: Path, model: Path, params: Mapping[str, Any], log_path: Path, timeout: float = 600,
            skip: str | None = None, gpus: bool = False, interval_s: float = 0.1,
            skip_status: Status = Status.SKIPPED, seed: str = "0", round_: int = 1) -> dict[str, Any]:
    """Serve, warm up, measure; a failure is recorded (status, error), never raised.

    ``seed``: of the drawn lengths (the plan's seed and the cell: every build and round draws the same ones) and,
    with ``round_``, of the arrival schedule (every build the same in a round, rounds differ).

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
        _serve(exe, model, params, log_path, port, base, deadline, result, samples, (seed, round_))
    result["samples"] = samples.result()
    if result["status"] != Status.OK:
        result["server_log_tail"] = _tail(log_path)
    return result


def _serve(exe: Path, model: Path, params: Mapping[str, Any], log_path: Path, port: int, base: str, deadline: float,
           result: dict[str, Any], samples: sampler.Sampler, seed: tuple[str, int]) -> None:
    proc = None
    try:
        cmd = server_command(exe, model, params, port)
        result.update(command=cmd, command_line=shlex.join(cmd))
        samples.mark("load")
        proc = start(cmd, log_path)
        wait_ready(base, proc, min(deadline, time.monotonic() + READY_TIMEOUT))
        with requests.Session() as session:
            props = session.get(f"{base}/props", timeout=30)
            result["props"] = _effective_settings(props.json() if props.ok else {})
            conversations = workload(session, base, params, seed[0])
            samples.mark("warmup")
            result["warmup"] = warm_up_slots(session, base, params, first=len(conversations))
        samples.mark(phases.REQUESTS)
        seen = interference.Window()
        measured = requests_at(base, proc.pid, params, conversations,
                               arrivals.schedule(params, len(conversations), f"{seed[0]}:arrivals:{seed[1]}"))
        seen.measured(measured["cpu"]["server_s"])
        result["interference"] = {**seen.result(samples.gpu_others({proc.pid})),
                                  "server_cpu": measured.pop("server_cpu")}
        samples.mark("stop")
        if time.monotonic() > deadline:
            raise ServerFailed("the cell did not finish within serving.timeout")
        result.update(measured, status=Status.OK)
        result["error"] = check(measured["requests"], params)
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


@contextlib.contextmanager
def serving(exe: Path, model: Path, params: Mapping[str, Any], log_path: Path, deadline: float,
            ) -> Iterator[tuple[str, subprocess.Popen]]:
    """A ready llama-server for ``params`` on a free loopback port, stopped on every path: (its URL, its process).
    The pilot's; a cell's own goes through measure(), which records each step."""
    port = free_port()
    proc = start(server_command(exe, model, params, port), log_path)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, min(deadline, time.monotonic() + READY_TIMEOUT))
        yield f"http://127.0.0.1:{port}", proc
    finally:
        processes.stop_group(proc, STOP_GRACE)


def workload(session: requests.Session, base: str, params: Mapping[str, Any], seed: str, first: int = 0,
             ) -> list[dict[str, Any]]:
    """A cell's conversations (measure/sessions.py), numbered from ``first``: a trace's; ``requests`` sessions of
    ``turns`` turns behind a prefix; or ``requests`` lone requests of fixed or drawn lengths, or a dataset's (each cut
    to prompt_tokens, asking for its max_tokens up to the cell's)."""
    def tokens(text: str, special: bool) -> list[int]:
        return tokenize(session, base, text, special)

    if trace := axes.value(params, "trace", axes.SERVING):
        return sessions.replay(tokens, Path(trace).expanduser())
    if conversational(params):
        return sessions.sessions(tokens, params, seed, first)
    count = params["requests"]
    sizes = arrivals.lengths(params, count, f"{seed}:lengths")
    texts = None
    if dataset := axes.value(params, "dataset", axes.SERVING):
        entries = arrivals.dataset(Path(dataset).expanduser(), count)
        texts = [e["prompt"] for e in entries]
        sizes = [(params["prompt_tokens"], min(int(e.get("max_tokens") or params["max_tokens"]), params["max_tokens"]))
                 for e in entries]
    prompts = make_prompts(session, base, [p for p, _ in sizes], params["cache"] == "warm", texts, first)
    return sessions.lone(prompts, [o for _, o in sizes], first)


def warm_up_slots(session: requests.Session, base: str, params: Mapping[str, Any], first: int,
                  ) -> list[dict[str, Any]]:
    """warm_up() with prompts of their own, numbered from ``first`` (after the measured ones): a conversation
    cell's are first turns of conversations of its own, behind the same prefix (a shared one is primed on every
    slot, as on a server that has been running)."""
    count = params["parallel"] * WARMUP_MAX
    if conversational(params) and not axes.value(params, "trace", axes.SERVING):
        extra = sessions.sessions(lambda text, special: tokenize(session, base, text, special), params, "warm-up",
                                  first, count)
        prompts = [conversation["turns"][0]["new"] for conversation in extra]
    else:
        prompts = make_prompts(session, base, [params["prompt_tokens"]] * count, params["cache"] == "warm",
                               first=first)
    return warm_up(session, base, prompts, params)


def requests_at(base: str, server_pid: int, params: Mapping[str, Any], conversations: list[dict[str, Any]],
                send_at: list[float] | None) -> dict[str, Any]:
    """The measured requests of one cell (or pilot level), with the CPU time the client and the server spent, the
    server's CPU seconds and both clocks read throughout (``server_cpu``: derive/samples.py serving_stalls), and
    the server's /metrics scraped every METRICS_INTERVAL_S (``metrics``)."""
    server_seconds = interference.tree_seconds(server_pid)
    before, client_before = server_seconds(), time.process_time()
    with interference.ServerReadings(server_pid) as readings, scraping(base, readings.origin) as scraped:
        done, wall = run_level(base, conversations, params["concurrency"], cache_prompt(params), send_at,
                               start=readings.origin)
    client, server = time.process_time() - client_before, server_seconds() - before
    return {"requests": done, "wall_s": wall,
            "cpu": {"client_s": round(client, 3), "server_s": round(server, 3), "wall_s": round(wall, 3),
                    "logical_cpus": os.cpu_count()},
            "metrics": scraped, "server_cpu": readings.readings}


@contextlib.contextmanager
def scraping(base: str, origin: float) -> Iterator[list[dict[str, Any]]]:
    """The server's Prometheus /metrics (llamacpp:requests_processing, requests_deferred, prompt_tokens_cached_total,
    ...), read every METRICS_INTERVAL_S while the block runs, each reading with its time from ``origin``
    (time.perf_counter). A reading resets the server's throughput gauges; the counters and queue gauges are what
    these answer: how many requests waited for a slot."""
    found: list[dict[str, Any]] = []
    stop = threading.Event()

    def read() -> None:
        with requests.Session() as session:
            while not stop.wait(METRICS_INTERVAL_S):
                with contextlib.suppress(requests.RequestException):
                    text = session.get(f"{base}/metrics", timeout=5).text
                    found.append({"t_s": round(time.perf_counter() - origin, 3), **prometheus(text)})

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join(timeout=10)


def prometheus(text: str) -> dict[str, float]:
    """The ``llamacpp:`` samples of a Prometheus text page, by name without the prefix."""
    found = {}
    for line in text.splitlines():
        if line.startswith("llamacpp:") and "{" not in line:
            name, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                found[name.removeprefix("llamacpp:")] = float(value)
    return found


def check(done: list[dict[str, Any]], params: Mapping[str, Any]) -> str | None:
    """What makes a measured cell wrong rather than slow: a prompt not of its length, a cold prompt served warm."""
    for req in done:
        timings = req["timings"]
        if "prompt_n" not in timings:
            return "the server reported no timings"
        cached = timings.get("cache_n", 0)
        if params["cache"] == "cold" and cached and cache_prompt(params) is not None:
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

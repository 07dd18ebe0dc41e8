"""Run one benchmark cell: llama-bench with exactly the cell's parameters.

A cell's file always gets written, also when llama-bench fails: a failed
measurement is a result the report must show (with its reason), and the
aggregate must not be blocked by it. The raw llama-bench records are kept
as they came, next to what explains them (command, host, times, peak RSS).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from llamabench import commands, files, hardware, machine_lock, matrix, progress, records, sampler, system_state
from llamabench.build import option_enabled, slow_kv_path
from llamabench.entry import announce_failure
from llamabench.errors import OUT_OF_MEMORY, Unsupported

log = logging.getLogger(__name__)

# Bump when what a cell measures changes (flags, warm-up, what is timed): every cell
# is measured again. Code edits that leave the measurement alone rerun nothing.
RULE_VERSION = 2  # 2: rounds, the machine-wide lock, the system state before each cell

# JSON on stdout; on stderr the phase markers (the sampler's energy boundaries) and llama.cpp's own log,
# which says where the layers went, how big each buffer was, and why an allocation failed. It is
# written while the model loads and the context is made, never inside a timed repetition.
LOGGING = ["-o", "json", "--progress", "-v"]

# What llama.cpp logs when memory runs out: ggml's CPU allocator, the CUDA allocator, llama's buffers.
OOM_PATTERNS = ("insufficient memory", "out of memory", "failed to allocate", "cudamalloc failed",
                "std::bad_alloc", "unable to allocate")

# The build and model record fields a cell keeps, under the same names: what explains its numbers.
BUILD_FACTS = ("name", "commit", "build_number", "options", "compiler", "cmake", "cache_key", "devices")
MODEL_FACTS = ("name", "sha256", "size_bytes", "gguf", "origin")


def bench_cell(smk: Any) -> None:
    """Rule ``bench_cell``: one round of one parameter set, recorded even when it fails."""
    build = records.read(smk.input.build, "build")
    model = records.read(smk.input.model_manifest, "model")
    layers = model["gguf"].get("layers")
    params = dict(smk.params.cell)
    round_, base = smk.params.round, smk.params.base_cell
    label = f"{smk.wildcards.build}/{smk.wildcards.model}/{smk.wildcards.cell}"
    log.info("cell %s", label)
    exe = Path(build["bin_dir"]) / build["binaries"]["bench"]
    with machine_lock.held(f"cell {label}") as waited:
        state = system_state.snapshot()
        try:
            if why := hardware.skip_reason(smk.input):
                raise Unsupported(why)
            cmd = command(exe, Path(smk.input.model), matrix.for_model(params, layers), smk.params.delay)
        except Unsupported as err:
            log.warning("cell %s skipped: %s", label, err)
            result = skipped([str(exe), "-m", str(smk.input.model)], str(err))
        else:
            result = measure(cmd, Path(smk.log[0]), timeout=smk.config["benchmark"]["timeout"],
                             gpus=uses_gpu(build), interval_s=sampler.interval_s(smk.config))
    announce_failure(f"cell {label}", result)
    if why := system_state.busy(state):
        log.warning("cell %s ran on a busy machine: %s", label, why)
    bench = smk.config["benchmark"]
    order = matrix.round_order(list(matrix.all_cells(smk.config)[0]), round_, bench["seed"])
    records.write(smk.output[0], "bench_cell", {
        "cell": smk.wildcards.cell,
        "base_cell": base,
        "round": round_,
        "seed": bench["seed"],
        "round_position": order.index((smk.wildcards.build, smk.wildcards.model, base)) + 1
        if (smk.wildcards.build, smk.wildcards.model, base) in order else None,
        "params": params,
        "offload": matrix.placement(params, layers, uses_gpu(build)),
        "notes": [note for note in [slow_kv_path(build["options"], params)] if note],
        "delay": smk.params.delay,
        "lock_wait_s": round(waited, 3),
        "system": state,
        **facts(build, model),
        "log": smk.log[0],
        "llama_bench": result,
    })


def uses_gpu(build_record: dict[str, Any]) -> bool:
    """Whether a build's runs are GPU runs, whose GPUs the sampler reads (energy, VRAM)."""
    return option_enabled(build_record["options"], "GGML_CUDA")


def facts(build: dict[str, Any], model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The build and model record fields a cell keeps, under their own names."""
    return {"build": {key: build[key] for key in BUILD_FACTS}, "model": {key: model[key] for key in MODEL_FACTS}}


def command(bench_exe: Path, model: Path, params: dict[str, Any], delay: int) -> list[str]:
    cmd = [str(bench_exe), "-m", str(model), *LOGGING, *matrix.llama_bench_args(params, commands.help_text(bench_exe))]
    if delay:
        cmd += ["--delay", str(delay)]
    return cmd


def measure(
    cmd: list[str],
    log_path: Path | None,
    timeout: float | None = None,
    on_progress: Callable[[str], None] | None = None,
    gpus: bool = False,
    interval_s: float = 0.1,
) -> dict[str, Any]:
    """Run llama-bench; return its records, exit status, the OS's peak-RSS accounting and what the sampler saw.

    llama-bench's stderr passes through this process on its way to the log, and each
    ``--progress`` line is a mark for the sampler (each GPU's energy counter) and is
    handed to ``on_progress`` as it arrives (an RPC cell reads the link's byte
    counters there). With ``gpus``, the node's GPUs are sampled too.
    """
    stderr_path = log_path or Path(os.devnull)
    start_wall, start = files.now_iso(), time.time()
    log.info("$ %s", shlex.join(cmd))
    with machine_lock.held(shlex.join(cmd[:1])), tempfile.TemporaryFile("w+") as out, \
            open(stderr_path, "a") as err_out, sampler.sampling(interval_s, gpus) as samples:

        def marked(line: str) -> None:
            samples.mark(line)
            if on_progress:
                on_progress(line)

        # A session of its own: Ctrl-C in the terminal or a cancelled job reaches only
        # this step, whose cleanup below must stop llama-bench (tests check that it does).
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True, errors="replace",
                                start_new_session=True)
        relay = threading.Thread(target=_relay, args=(proc.stderr, err_out, marked), daemon=True)
        relay.start()
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            stop(proc)

        timer = threading.Timer(timeout, expire) if timeout else None
        try:
            if timer:
                timer.start()
            # wait4, not wait: it returns this child's own resource usage (peak RSS).
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            stop(proc)  # an interrupted run must not leave llama-bench behind
            proc.wait()
            raise
        finally:
            if timer:
                timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        relay.join()
        out.seek(0)
        stdout = out.read()
    end = time.time()
    peak_kib = usage.ru_maxrss
    result: dict[str, Any] = {
        "command": cmd,
        "command_line": shlex.join(cmd),
        "start": start_wall,
        "start_epoch": start,
        "end_epoch": end,
        "duration_s": round(end - start, 3),
        "exit_status": proc.returncode,
        "timed_out": timed_out.is_set(),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "samples": samples.result(),
    }
    try:
        records = json.loads(stdout) if stdout.strip() else []
    except json.JSONDecodeError as err:
        records = []
        result["stdout"] = stdout[-4000:]
        result["parse_error"] = str(err)
    result["records"] = records
    ok = proc.returncode == 0 and bool(records) and "parse_error" not in result
    result["status"] = "ok" if ok else "failed"
    if not ok:
        result["error"] = failure_reason(proc.returncode, stderr_path, result)
        if out_of_memory(stderr_path):
            result["status"] = OUT_OF_MEMORY
    return result


def out_of_memory(stderr_path: Path) -> bool:
    """Whether llama.cpp's log says an allocation failed: an expected outcome of a sweep (too many layers on
    the GPU, too long a context), not a crash."""
    try:
        text = Path(stderr_path).read_text(errors="replace").lower()
    except OSError:
        return False
    return any(pattern in text for pattern in OOM_PATTERNS)


def skipped(cmd: list[str], reason: str) -> dict[str, Any]:
    """The run part of a cell this llama-bench cannot express: nothing ran, and the reason says why."""
    now = time.time()
    return {"command": cmd, "command_line": shlex.join(cmd), "start": files.now_iso(), "start_epoch": now,
            "end_epoch": now, "duration_s": 0.0, "exit_status": 0, "timed_out": False, "peak_rss_mib": 0.0,
            "records": [], "status": "skipped", "error": reason}


def _relay(stream: IO[str], sink: IO[str], on_progress: Callable[[str], None]) -> None:
    for line in stream:
        if line.startswith(progress.MARKER):
            on_progress(line.strip())
        sink.write(line)
        sink.flush()  # the log shows progress as it happens


def stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def failure_reason(returncode: int, stderr_path: Path, result: dict[str, Any]) -> str:
    """The lines of llama-bench's stderr that say what went wrong, for the report."""
    lines: list[str] = []
    try:
        lines = [line.strip() for line in Path(stderr_path).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        pass
    flagged = [line for line in lines if "error" in line.lower() or "failed" in line.lower()]
    detail = "; ".join((flagged or lines)[-3:])
    if result.get("timed_out"):
        head = "timed out (benchmark.timeout) and was killed"
    elif returncode < 0:
        head = f"killed by signal {-returncode}" + (" (the kernel's out-of-memory killer sends this)"
                                                    if returncode == -signal.SIGKILL else "")
    elif returncode:
        head = f"exit status {returncode}"
    elif "parse_error" in result:
        head = f"unreadable JSON output ({result['parse_error']})"
    else:
        head = "no benchmark records in the output"
    return f"{head}: {detail}" if detail else head

"""Rule ``load_pilot`` (a checkpoint): the levels of a load sweep, found on one build in one server session.

One llama-server with the sweep's settings, its slots warmed up; one request's
time alone sets the first rate (0.3 requests per that time, or per a conversation's turns and think times,
unless ``pilot.start``); then derive/load.py's ladder: up by ``pilot.factor`` until a
saturated level is confirmed by the saturated level above it (one whose level
above is not saturated is a false alarm, recorded, and the climb goes on), then
refined near the largest rate meeting the objectives.
Each level sends ``pilot.requests`` requests (the sweep's ``requests`` unless set) on its own seeded schedule. The
levels it chose become cells measured in every round (rule ``load_cell``), for
every build of the sweep. A pilot that cannot serve is recorded with its reason
and chooses nothing.
"""

from __future__ import annotations

import logging
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

from llamabench.core import axes, backends, files, model_shape, plan, records, sessions
from llamabench.core.errors import Unsupported
from llamabench.core.load import level_rate, pilot_requests
from llamabench.core.status import Status
from llamabench.derive import load, samples
from llamabench.entry import announce_failure
from llamabench.measure import arrivals, llama_server, machine_lock

log = logging.getLogger(__name__)

# The first rate, over one request's time alone: a light load.
START_SHARE = 0.3


def load_pilot(smk: Any) -> None:
    the_plan = plan.of(smk.config)
    sweep = the_plan.sweeps[smk.wildcards.sweep]
    settings = sweep.settings
    build = records.read(smk.input.build, "build")
    model = records.read(smk.input.model_manifest, "model")
    exe = Path(build["bin_dir"]) / build["binaries"].get("server", "llama-server")
    seed = f"{the_plan.seed}:{sweep.name}:pilot"
    result: dict[str, Any] = {"status": Status.FAILED, "error": None, "start": files.now_iso(), "levels": [],
                              "chosen": []}
    skip = backends.unusable(build, sweep.params, axes.SERVING) or sessions.reuse_problem(
        sweep.params, model_shape.shape(Path(smk.input.model), model["sha256"])["sliding_window"])
    if skip or "server" not in build["binaries"]:
        result.update(status=Status.SKIPPED, error=skip or f"build {build['name']} has no llama-server")
    else:
        with machine_lock.held(f"load pilot {sweep.name} on {build['name']}"):
            _pilot(exe, Path(smk.input.model), sweep, settings, Path(smk.log[0]), seed,
                   the_plan.timeouts["serve_cell"] * settings["pilot"]["max_levels"], result)
    result["end"] = files.now_iso()
    announce_failure(f"load pilot {sweep.name} ({build['name']}/{model['name']})", result)
    records.write(smk.output[0], "load_pilot", {
        "sweep": sweep.name, "seed": the_plan.seed, "params": dict(sweep.params), "settings": dict(settings),
        **records.cell_facts(build, model), "log": smk.log[0], **result})


def conversation_s(params: dict[str, Any], alone_s: float) -> float:
    """One conversation's time alone: its turns at one request's time each (a lower bound: later turns resend the
    history) and the mean think time between them; a lone request's for a cell of lone requests."""
    turns = axes.value(params, "turns", axes.SERVING)
    return turns * alone_s + (turns - 1) * (axes.value(params, "think_ms", axes.SERVING) or 0) / 1000


def _pilot(exe: Path, model: Path, sweep: Any, settings: dict[str, Any], log_path: Path, seed: str, timeout: float,
           result: dict[str, Any]) -> None:
    pilot = settings["pilot"]
    first = sweep.level(pilot.get("start") or 1.0)
    try:
        with llama_server.serving(exe, model, first, log_path, time.monotonic() + timeout) as (base, proc), \
                requests.Session() as session:
            result["command_line"] = shlex.join(proc.args)
            warm = llama_server.warm_up_slots(session, base, first, first=0)
            alone_s = float(np.median([w["e2e_ms"] for w in warm])) / 1000
            start = pilot.get("start") or START_SHARE / conversation_s(first, alone_s)
            result.update(single_request_s=alone_s, start_rate=level_rate(start))
            numbered = iter(range(1, pilot["max_levels"] + 1))

            def measure(rate: float) -> dict[str, Any]:
                params = {**sweep.level(rate), "requests": pilot_requests(settings)}
                conversations = llama_server.workload(session, base, params, seed, first=1000 * next(numbered))
                send_at = arrivals.schedule(params, len(conversations), f"{seed}:{rate}")
                measured = llama_server.requests_at(base, proc.pid, params, conversations, send_at)
                if error := llama_server.check(measured["requests"], params):
                    raise llama_server.ServerFailed(error)
                found = {**load.level_metrics(measured["requests"], settings["objectives"],
                                              settings["alpha"] / pilot["max_levels"]),
                         "cpu": measured["cpu"]}
                if stalled := samples.serving_stalls(measured["server_cpu"], measured["requests"]):
                    found["stalled"] = "; ".join(stalled)
                    log.warning("pilot level %.3g req/s stalled: %s", rate, found["stalled"])
                log.info("pilot level %.3g req/s: TTFT p90 %.0f ms, goodput %.2f req/s, saturated %s%s", rate,
                         found["ttft_p90_ms"], found["goodput"], found["saturated"],
                         "" if found["meets"] else f" (misses: {'; '.join(found['missed'])})")
                return found

            result.update(load.pilot(measure, start, pilot["factor"], pilot["refine"], pilot["max_levels"]),
                          status=Status.OK)
    except Unsupported as err:
        result.update(status=Status.SKIPPED, error=str(err))
    except (llama_server.ServerFailed, requests.RequestException, ValueError, KeyError) as err:
        result["error"] = f"{err}; server log: {log_path}"

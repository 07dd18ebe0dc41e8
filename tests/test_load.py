"""Serving under load with a real llama-server: open arrivals sent on their schedule (Poisson at the configured
rate with gaps' CV near 1, gamma burstier), per-token times, the server axes (-nocb, --no-cache-prompt), and a
load sweep through Snakemake: a pilot that finds saturation by itself, levels measured in rounds, the capacity in
the findings and the report, and a sweep interrupted mid-way that leaves no server and resumes without measuring
a finished level again."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import interrupt_when, load_test_config, mtimes, snakemake, write_config
from llamabench.core import axes, configuration, matrix, records
from llamabench.core.status import Status
from llamabench.derive import load
from llamabench.measure import arrivals, llama_server

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake

TARGET = "results/load/chat.json"
# light: 2 cores serve about 13-17 of these tiny requests a second one at a time (-nocb), so the server is busy
# about a quarter of the time. The schedule is seeded: at 80 requests and 10 a second its own clusters made
# in-flight counts rise (Kendall p 0.01 with a constant service time) and a CI run called the level saturated;
# this one's p is about 0.3.
RATE, REQUESTS = 4.0, 60
DEFAULT_SERVING = {a.name: a.default for a in axes.of(axes.SERVING) if a.default is not None}


def level(bin_dir: Path, gemma: Path, tmp_path: Path, **params: Any) -> dict[str, Any]:
    """One open-arrival serving cell, measured: REQUESTS tiny requests at RATE requests/s (about 15 s)."""
    base = {**DEFAULT_SERVING, "prompt_tokens": 8, "max_tokens": 3, "requests": REQUESTS, "concurrency": REQUESTS,
            "ctx_size": 512, "rate": RATE, **params}
    run = llama_server.measure(bin_dir / "llama-server", gemma, axes.normalize(base, axes.SERVING),
                               tmp_path / f"{params['arrival']}.log", timeout=300, seed="test")
    assert run["status"] == Status.OK, run["error"]
    return run


@pytest.fixture(scope="module")
def open_levels(bin_dir: Path, gemma: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("arrivals")
    return {"poisson": level(bin_dir, gemma, tmp, arrival="poisson", cont_batching="off"),
            "gamma": level(bin_dir, gemma, tmp, arrival="gamma", burstiness=0.25, prompt_cache="off")}


def sends(run: dict[str, Any]) -> list[float]:
    return sorted(r["sent_s"] for r in run["requests"])


def test_poisson_requests_are_sent_at_the_configured_rate_with_gaps_of_cv_near_one(open_levels: dict) -> None:
    run = open_levels["poisson"]
    sent = sends(run)
    rate = (len(sent) - 1) / (sent[-1] - sent[0])
    assert abs(rate / RATE - 1) < 0.25, rate  # 59 exponential gaps: the mean's standard error is 13 %
    assert 0.75 < arrivals.cv(sent) < 1.3
    # each request left on its schedule (the client never queued one: the cap is the request count)
    lags = [r["sent_s"] - r["scheduled_s"] for r in run["requests"]]
    assert float(np.median(lags)) < 0.01 and max(lags) < 0.1
    assert "-nocb" in run["command"]


def test_gamma_arrivals_are_burstier_than_poisson(open_levels: dict) -> None:
    poisson, gamma = (arrivals.cv(sends(open_levels[k])) for k in ("poisson", "gamma"))
    assert gamma > 1.4 and gamma > poisson + 0.3  # shape 0.25: the gaps' CV is 2
    sent = sends(open_levels["gamma"])
    assert abs((len(sent) - 1) / (sent[-1] - sent[0]) / RATE - 1) < 0.5  # the same mean rate, bursts and lulls
    assert "--no-cache-prompt" in open_levels["gamma"]["command"]


def test_every_token_is_timed_on_both_clocks_and_the_client_cost_recorded(open_levels: dict) -> None:
    run = open_levels["poisson"]
    for request in run["requests"]:
        assert len(request["token_ms"]) == request["text_chunks"] <= request["max_tokens"]
        assert request["token_ms"][0] == pytest.approx(request["ttft_ms"], abs=0.01)
        assert request["token_ms"] == sorted(request["token_ms"])
        server = request["token_server_ms"]
        assert all(s is not None for s in server) and server == sorted(server)
        assert request["timings"]["prompt_n"] == 8
    cpu = run["cpu"]
    assert cpu["client_s"] > 0 and cpu["server_s"] > 0 and cpu["logical_cpus"] == os.cpu_count()
    # the level is not saturated at this light load (the test's error rate 1 %), and its in-flight count never
    # exceeds what was sent
    found = load.level_metrics(run["requests"], {"ttft_ms": {"p90": 5000}}, 0.01)
    assert found["meets"] and not found["saturated"] and found["peak_in_flight"] <= REQUESTS, found


def test_lengths_drawn_within_a_spread_and_a_dataset_s_prompts_reach_the_server(
        bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    spread = level(bin_dir, gemma, tmp_path, arrival="closed", rate=None, concurrency=2, requests=12,
                   prompt_tokens=40, max_tokens=6, length_spread=0.5)
    prompts = [r["prompt_tokens"] for r in spread["requests"]]
    outputs = [r["max_tokens"] for r in spread["requests"]]
    assert len(set(prompts)) > 3 and all(20 <= p <= 60 for p in prompts) and all(3 <= o <= 9 for o in outputs)
    # the server processed exactly what was drawn (checked per request), and generated what was asked
    assert all(r["timings"]["prompt_n"] == r["prompt_tokens"] and r["text_chunks"] <= r["max_tokens"]
               for r in spread["requests"])
    data = tmp_path / "chat.jsonl"
    data.write_text("\n".join(json.dumps(e) for e in [
        {"prompt": "Hello there, how are you today?", "max_tokens": 2},
        {"prompt": "Tell me a long story about the sea and the ships that sail on it. " * 20}]) + "\n")
    sent = level(bin_dir, gemma, tmp_path, arrival="closed", rate=None, requests=4, dataset=str(data),
                 prompt_tokens=64, max_tokens=5)
    asked = [(r["prompt_tokens"], r["max_tokens"]) for r in sent["requests"]]
    assert asked[0] == asked[2] and asked[1] == asked[3] == (64, 5)  # in turn; the long one cut to prompt_tokens
    assert 5 < asked[0][0] < 20 and asked[0][1] == 2
    assert "_ds-" in matrix.cell_id(axes.normalize({**DEFAULT_SERVING, "dataset": str(data)}, axes.SERVING),
                                    axes.SERVING)


def sweep_config(rounds: int, builds: tuple[str, ...] = ()) -> dict[str, Any]:
    """The small test config without its grid, and one sweep over two builds of the same options (the second a
    cache hit: an A/A comparison; ``builds``: those alone): tiny requests, a coarse pilot (the benchmark script
    refines to 8 %)."""
    config = load_test_config()
    config["builds"]["twin"] = config["builds"]["cpu-rpc"]
    config["benchmark"].update(rounds=rounds, groups={}, include=[])
    config["serving"]["scenarios"] = {}
    config["rpc"] = {"topologies": {}}
    config["tune"] = {}
    config["load"] = {"chat": {"builds": list(builds), "settings": {"prompt_tokens": 32, "max_tokens": 8},
                               "requests": 12,
                               "pilot": {"requests": 12, "factor": 2, "refine": 0.3, "max_levels": 6},
                               "objectives": {"ttft_ms": {"p90": 1500}}}}
    return config


def level_cells(workdir: Path) -> dict[Path, int]:
    return mtimes(workdir / "results/load/chat/cells")


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory, rpc_build: dict[str, Any]) -> Path:
    workdir = tmp_path_factory.mktemp("load")
    write_config(workdir, sweep_config(1))
    snakemake(workdir, "--cores", "2", TARGET)
    return workdir


def test_the_pilot_finds_saturation_by_itself_and_the_levels_are_measured(sweep_dir: Path) -> None:
    pilot = records.read(sweep_dir / "results/load/chat/pilot/cpu-rpc/gemma3-270m.json", "load_pilot")
    assert pilot["status"] == Status.OK and pilot["ended"] == "saturated", pilot["error"]
    rates = [lv["rate"] for lv in pilot["levels"]]  # the ladder (by the factor), then the refinement
    assert rates[1] == pytest.approx(2 * rates[0], rel=0.01) and any(lv["saturated"] for lv in pilot["levels"])
    # the climb ended on a confirmed saturation, a saturated level and the saturated level above it; a false alarm
    # below it (a saturated level with one above that is not) did not end it
    assert sum(lv["confirmed"] for lv in pilot["levels"]) >= 2
    assert pilot["chosen"] == sorted(rates)
    twin = records.read(sweep_dir / "results/load/chat/pilot/twin/gemma3-270m.json", "load_pilot")
    found = records.read(sweep_dir / TARGET, "load_sweep")
    assert found["rates"] == sorted(set(pilot["chosen"]) | set(twin["chosen"]))  # both builds measure every level
    result, other = found["results"]
    assert result["build"] == "cpu-rpc" and other["build"] == "twin"
    assert len(result["levels"]) == len(found["rates"]) and all(len(lv["rounds"]) == 1 for lv in result["levels"])
    assert result["capacity_mean"] in [0.0, *found["rates"]]
    assert result["cpu"]["client_cores"] < result["cpu"]["server_cores"]
    # the per-token export: one line per text chunk of every measured request
    lines = [json.loads(line) for line in (sweep_dir / "results/load/chat/tokens.jsonl").read_text().splitlines()]
    chunks = sum(r["text_chunks"] for p in level_cells(sweep_dir)
                 for r in records.read(p, "serve_cell")["serving"]["requests"])
    assert len(lines) == chunks
    assert {line["rate"] for line in lines} == set(found["rates"]) and {line["build"] for line in lines} == \
        {"cpu-rpc", "twin"}


def test_the_capacity_and_the_a_a_comparison_reach_the_findings_and_the_report(sweep_dir: Path) -> None:
    snakemake(sweep_dir, "--cores", "2")
    findings = records.read_table(sweep_dir / "results/findings.csv", "finding_row")
    capacity = findings[findings["question"] == "load_capacity"]
    assert sorted(capacity["build"]) == ["cpu-rpc", "twin"]
    assert capacity["statement"].str.contains("largest load meeting TTFT p90 ≤ 1500 ms").all()
    # the same options twice, paired by round under the run's correction: no difference is claimed (one round
    # here: the benchmark script runs the pair in three, five times over)
    pairs = records.read_table(sweep_dir / "results/comparisons.csv", "comparison_row")
    [pair] = pairs[pairs["comparison"] == "load capacity"].to_dict("records")
    assert (pair["baseline_build"], pair["candidate_build"], pair["baseline_cell"]) == ("cpu-rpc", "twin", "chat")
    [versus] = findings[findings["question"] == "load_capacity_vs_build"].to_dict("records")
    assert versus["significant"] is False or pair["paired_rounds"] < 2
    page = (sweep_dir / "results/report.html").read_text()
    assert '<h2 id="load">Serving under load</h2>' in page
    assert 'alt="chat: latency and goodput against offered load"' in page


def test_a_sweep_interrupted_mid_way_leaves_no_server_and_resumes_measuring_nothing_twice(sweep_dir: Path) -> None:
    """A second round of the sweep, of its first build alone (the A/A pair above has its round), interrupted as it
    starts and resumed."""
    before = level_cells(sweep_dir)
    first = {p for p in before if "/cpu-rpc/" in str(p)}
    write_config(sweep_dir, sweep_config(2, builds=("cpu-rpc",)))
    interrupt_when(sweep_dir, TARGET, lambda: any("_round-2" in p.name for p in level_cells(sweep_dir)),
                   "round 2 never started")
    assert not subprocess.run(["pgrep", "-f", "llama-server -m results/models"], capture_output=True).stdout, \
        "llama-server outlived Ctrl-C"
    interrupted = level_cells(sweep_dir)
    assert all(interrupted[p] == mtime for p, mtime in before.items()), "a level of the first run was measured again"
    out = snakemake(sweep_dir, "--cores", "2", TARGET)
    after = level_cells(sweep_dir)
    assert all(after[p] == mtime for p, mtime in interrupted.items()), "a finished level was measured again"
    ran = len(re.findall(r"Finished jobid: \d+ \(Rule: load_cell\)", out.stdout + out.stderr))
    assert ran == len(after) - len(interrupted)
    # round 2 of that build alone: its own pilot's levels (round 1 measured the union of the pair's levels on each)
    new = set(after) - set(before)
    assert new and all("/cpu-rpc/" in str(p) and p.stem.endswith("_round-2") for p in new)
    assert {p.name.replace("_round-2", "") for p in new} <= {p.name for p in first}
    assert "load_pilot" not in out.stdout + out.stderr  # the levels stay the pilot's
    [result] = records.read(sweep_dir / TARGET, "load_sweep")["results"]
    assert len(result["rounds"]) == 2 and len(result["capacity_rounds"]) <= 2
    if result["capacity_ci_low"] is not None:
        assert result["capacity_ci_low"] <= result["capacity_mean"] <= result["capacity_ci_high"]


@pytest.mark.parametrize(("settings", "error"), [
    ({"arrival": "gamma", "burstiness": 1.0, "concurrency": 1}, "concurrency 1 caps an open arrival"),
    ({"arrival": "poisson", "burstiness": 0.5}, "burstiness shapes gamma arrivals only"),
    ({"dataset": "missing.jsonl"}, "dataset missing.jsonl is not a file"),
])
def test_a_sweep_that_cannot_run_is_a_config_error_naming_the_key(settings: dict, error: str) -> None:
    config = {"load": {"chat": {"settings": settings}}}
    with pytest.raises(configuration.ConfigError, match=re.escape(f"load.chat.settings: {error}")):
        configuration.resolve(config)


def test_a_p99_objective_needs_enough_requests_per_level() -> None:
    config = {"load": {"chat": {"objectives": {"ttft_ms": {"p99": 500}}}}}
    with pytest.raises(configuration.ConfigError, match=r"load.chat.objectives.ttft_ms.p99 needs at least 100"):
        configuration.resolve(config)
    config = {"serving": {"scenarios": {"s": {"arrival": ["poisson"]}}}}
    with pytest.raises(configuration.ConfigError, match=r"serving.scenarios.s: arrival poisson needs a rate"):
        configuration.resolve(config)

"""Conversations and agents with a real llama-server, through Snakemake: sessions whose later turns reuse the
cached history (cache_n > 0) and answer faster than the same turn with the cache off, paired by round; a trace
replayed on its schedule; the wait for a slot apart from the prefill; a sweep of conversations whose capacity (how
many the machine holds at once) reaches the findings; Ctrl-C mid-sweep leaving no server. And, without a server,
what cannot be served said before any job, naming the key or the trace's line."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import interrupt_when, load_test_config, mtimes, snakemake, write_config
from llamabench.core import configuration, records, sessions
from llamabench.core.status import Status
from llamabench.derive import sessions as derived

# A conversation: a 64-token system prompt shared by all, three turns of 16 new tokens and 4 generated.
AGENT = {"turns": 3, "prefix_tokens": 64, "prompt_tokens": 16, "max_tokens": 4, "requests": 2, "ctx_size": 1024}
# A trace: two sessions of two turns and one lone request over about a second and a half.
TRACE = [{"timestamp": 0, "session_id": "a", "input_length": 40, "output_length": 3},
         {"timestamp": 300, "session_id": "b", "input_length": 24, "output_length": 3},
         {"timestamp": 900, "session_id": "a", "input_length": 60, "output_length": 3},
         {"timestamp": 1200, "output_length": 2, "input_length": 12},
         {"timestamp": 1500, "session_id": "b", "input_length": 50, "output_length": 3}]
SWEEP = "results/load/agents.json"
# How late the client may send a request of the trace that its session did not hold back.
SEND_TOLERANCE_S = 0.1


def session_config(trace: Path, rounds: int) -> dict[str, Any]:
    """The small test config without its grid: conversations with the cache off and on, a trace, and a sweep of
    conversations at two fixed rates."""
    config = load_test_config()
    config["benchmark"].update(rounds=rounds, groups={}, include=[])
    config["serving"]["min_requests"] = {"p90": 4, "p99": 100}
    config["serving"]["scenarios"] = {"agent": {**{k: [v] for k, v in AGENT.items()}, "cache": ["cold", "warm"]},
                                      "replay": {"trace": [str(trace)], "ctx_size": [1024], "cache": ["warm"]}}
    config["rpc"] = {"topologies": {}}
    config["tune"] = {}
    conversation = {key: value for key, value in AGENT.items() if key != "requests"}
    config["load"] = {"agents": {"settings": {**conversation, "cache": "warm", "think_ms": 200}, "requests": 4,
                                 "rates": [0.5, 2.0], "objectives": {"ttft_ms": {"p90": 2000}}}}
    return config


def write_trace(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory, rpc_build: dict[str, Any]) -> dict[str, Any]:
    """Two rounds of everything, the first run interrupted (Ctrl-C) once a level of the sweep has been measured,
    then resumed: what the interruption left (a llama-server still running, the levels measured by then) and the
    finished run's directory."""
    workdir = tmp_path_factory.mktemp("sessions")
    write_config(workdir, session_config(write_trace(workdir / "trace.jsonl", TRACE), 2))
    cells = workdir / "results/load/agents/cells"

    def finished() -> bool:
        """A level's record written 3 s ago: Snakemake has finished its job (a record written in the very moment
        of Ctrl-C belongs to a job it then counts unfinished, and measures again), and the next level runs."""
        return cells.exists() and any(time.time() - p.stat().st_mtime > 3 for p in cells.rglob("*.json"))

    interrupt_when(workdir, SWEEP, finished, "no level of the sweep was measured")
    left = subprocess.run(["pgrep", "-f", "llama-server -m results/models"], capture_output=True, text=True).stdout
    measured = mtimes(cells)
    snakemake(workdir, "--cores", "2")
    return {"workdir": workdir, "servers_left": left, "measured": measured, "after": mtimes(cells)}


@pytest.fixture(scope="module")
def run(interrupted: dict[str, Any]) -> Path:
    return interrupted["workdir"]


def serving_cells(workdir: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: records.read(p, "serve_cell") for p in (workdir / "results/serving").glob("*/*/*.json")}


def test_later_turns_reuse_the_history_and_answer_faster_with_the_cache(run: Path) -> None:
    cells = serving_cells(run)
    def measured(cache: str, round_: int = 1) -> dict[str, Any]:
        return next(c for c in cells.values() if c["params"].get("cache") == cache and c["params"].get("turns") == 3
                    and c.get("round", 1) == round_)

    warm, cold = measured("warm"), measured("cold")
    for cell in (warm, cold):
        assert cell["serving"]["status"] == Status.OK, cell["serving"]["error"]
        turns = [(r["session"], r["turn"]) for r in cell["serving"]["requests"]]
        assert sorted(turns) == [(s, t) for s in range(2) for t in (1, 2, 3)]
    by_turn = {(r["session"], r["turn"]): r for r in warm["serving"]["requests"]}
    for (session, turn), request in by_turn.items():
        if turn > 1:  # the whole history resent: the previous prompt, its answer, 16 new tokens
            before = by_turn[(session, turn - 1)]
            assert request["prompt_tokens"] == before["prompt_tokens"] + 4 + 16
            assert request["timings"]["cache_n"] > 0 and request["reused_share"] > 0.5
            assert request["timings"]["prompt_n"] + request["timings"]["cache_n"] == request["prompt_tokens"]
    assert all(r["timings"].get("cache_n", 0) == 0 for r in cold["serving"]["requests"])
    # the wait for a slot apart from the prefill, from the server's prompt_progress
    for request in warm["serving"]["requests"]:
        assert request["wait_ms"] is not None and 0 <= request["wait_ms"] < request["ttft_ms"]
        assert request["prefill_ms"] == request["timings"]["prompt_ms"]
    assert warm["serving"]["metrics"] and "requests_processing" in warm["serving"]["metrics"][0]
    # the last turn, its history cached, answers faster than the same turn with the cache off, in each round
    for round_ in (1, 2):
        last = {cache: [r["ttft_ms"] for r in measured(cache, round_)["serving"]["requests"] if r["turn"] == 3]
                for cache in ("warm", "cold")}
        assert sum(last["warm"]) < sum(last["cold"]), (round_, last)
    # the turns table and the finding: turn 3's TTFT, cache on against off, paired by round
    turns = records.read_table(run / "results/serving_turns.csv", "turn_row")
    agent = turns[turns["turns"] == 3]
    assert set(agent["turn"]) == {1, 2, 3} and (agent[agent["cache"] == "warm"].query("turn > 1")["reused_share"]
                                               > 0.5).all()
    findings = records.read_table(run / "results/findings.csv", "finding_row")
    [cache] = findings[(findings["question"] == "session_setting")
                       & (findings["subject"] == "cache warm vs cold")].to_dict("records")
    assert cache["reference_value"] > cache["value"] and cache["ratio"] < 1, cache["statement"]
    assert re.search(r"cache warm vs cold (cuts|makes no significant difference)", cache["statement"])


def test_a_trace_is_replayed_on_its_schedule(run: Path) -> None:
    [replay] = [c for c in serving_cells(run).values() if c["params"].get("trace") and c.get("round", 1) == 1]
    assert replay["serving"]["status"] == Status.OK, replay["serving"]["error"]
    sent = replay["serving"]["requests"]
    assert len(sent) == len(TRACE)
    for request in sent:
        assert request["sent_s"] >= request["scheduled_s"] - 0.005
        if not request["held_s"]:  # its session's previous turn had ended by its time
            assert request["sent_s"] - request["scheduled_s"] < SEND_TOLERANCE_S, request
    assert sorted(r["scheduled_s"] for r in sent) == [line["timestamp"] / 1000 for line in TRACE]
    lengths = sorted(r["prompt_tokens"] for r in sent)  # a later turn extends its session's history
    assert lengths == sorted(line["input_length"] for line in TRACE)
    later = [r for r in sent if r["session"] in ("a", "b") and r["turn"] == 2]
    assert later and all(r["timings"]["cache_n"] > 0 for r in later)


def test_a_conversation_sweep_says_how_many_the_machine_holds(run: Path) -> None:
    found = records.read(run / SWEEP, "load_sweep")
    [result] = found["results"]
    assert found["rates"] == [0.5, 2.0]
    for level in result["levels"]:
        assert level["concurrent_sessions"] > 0 and level["session_goodput_per_min"] is not None
        assert set(level["turn_ttft_p90_ms"]) == {"1", "2", "3"}
    findings = records.read_table(run / "results/findings.csv", "finding_row")
    [capacity] = findings[findings["question"] == "load_capacity"].to_dict("records")
    assert "concurrent conversations" in capacity["statement"] or "misses" in capacity["statement"], \
        capacity["statement"]
    page = (run / "results/report.html").read_text()
    assert "TTFT by turn against concurrent conversations" in page or result["capacity_mean"] == 0
    assert 'alt="serving figure"' in page


def test_ctrl_c_mid_sweep_leaves_no_server_and_the_sweep_resumes(interrupted: dict[str, Any]) -> None:
    assert not interrupted["servers_left"], "llama-server outlived Ctrl-C"
    assert interrupted["measured"], "the sweep was interrupted before any level"
    after = interrupted["after"]
    assert all(after[p] == mtime for p, mtime in interrupted["measured"].items()), "a level was measured again"
    assert len(after) == 2 * 2  # two rates, two rounds
    [result] = records.read(interrupted["workdir"] / SWEEP, "load_sweep")["results"]
    assert len(result["rounds"]) == 2


def test_cache_reuse_on_gemma_without_swa_full_is_refused_before_any_job(run: Path) -> None:
    """Once a job has read the model's file (the run above), its sliding window is known to the plan: llama-server
    would disable --cache-reuse on it, so a scenario asking for it without swa_full is refused naming the key."""
    config = {"serving": {"scenarios": {"reuse": {"cache_reuse": [256]}}}}
    with pytest.raises(configuration.ConfigError, match=r"serving.scenarios.reuse: cache_reuse 256 asks for "
                                                        r"cache reuse of a model with sliding-window attention "
                                                        r"\(window 512\)"):
        configuration.resolve(config)
    config["serving"]["scenarios"]["reuse"]["swa_full"] = ["on"]
    configuration.resolve(config)


# Without a server: what cannot be served is a config error naming the key or the trace's line.

@pytest.mark.parametrize(("line", "error"), [
    ({"timestamp": 0, "input_length": 8, "output_length": 2, "model": "x"}, "line 2 has unknown fields model"),
    ({"timestamp": -1, "input_length": 8, "output_length": 2}, "line 2: timestamp must be"),
    ({"timestamp": 0, "input_length": 8, "output_length": 2}, "line 2: timestamp 0 goes back"),
    ({"timestamp": 600, "output_length": 2}, "line 2 needs input_length or text"),
    ({"timestamp": 600, "input_length": 900, "output_length": 200}, "line 2: input_length + output_length = 1100"),
])
def test_a_trace_that_is_not_one_is_refused_before_any_job_naming_its_line(tmp_path: Path, line: dict,
                                                                            error: str) -> None:
    trace = write_trace(tmp_path / "t.jsonl", [{"timestamp": 500, "input_length": 8, "output_length": 2}, line])
    config = {"serving": {"scenarios": {"replay": {"trace": [str(trace)]}}, "defaults": {"ctx_size": 2048}}}
    with pytest.raises(configuration.ConfigError, match=re.escape(f"serving.scenarios.replay: trace {trace} {error}")
                       if "line 2:" not in error else re.escape(error)):
        configuration.resolve(config)


def test_a_conversation_longer_than_a_slot_is_refused_before_any_job() -> None:
    config = {"serving": {"scenarios": {"agent": {"turns": [8], "prefix_tokens": [1024], "prompt_tokens": [64],
                                                  "max_tokens": [64]}}}}
    # 1024 + 8 x (64 + 65) = 2056 tokens, and a slot holds 4096 / 2
    with pytest.raises(configuration.ConfigError, match=r"serving.scenarios.agent: a conversation of prefix_tokens "
                                                        r"\+ turns x \(prompt_tokens \+ max_tokens\) = 2056 tokens "
                                                        r"exceeds a slot's context of 2048"):
        configuration.resolve({"serving": {"scenarios": {"agent": {**config["serving"]["scenarios"]["agent"],
                                                                   "max_tokens": [65]}}}})
    configuration.resolve(config)  # 2048 fits exactly
    config["serving"]["scenarios"]["agent"]["kv_unified"] = ["on"]  # one buffer: a slot may take all 4096
    configuration.resolve({"serving": {"scenarios": {"agent": {**config["serving"]["scenarios"]["agent"],
                                                               "max_tokens": [200]}}}})


def test_a_trace_sets_its_own_schedule(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.jsonl", TRACE)
    config = {"serving": {"scenarios": {"replay": {"trace": [str(trace)], "turns": [2]}}}}
    with pytest.raises(configuration.ConfigError, match="a trace sets its own schedule"):
        configuration.resolve(config)


def test_cache_reuse_on_a_sliding_window_model_needs_swa_full() -> None:
    """llama-server disables --cache-reuse on such a model ("cache_reuse is not supported by this context") unless
    the SWA cache is full size: the cell says so instead of measuring no difference."""
    params = {"cache_reuse": 256, "swa_full": "off"}
    assert "swa_full" in sessions.reuse_problem(params, 512)
    assert sessions.reuse_problem({**params, "swa_full": "on"}, 512) is None
    assert sessions.reuse_problem(params, None) is None  # no sliding window: reuse works
    assert sessions.reuse_problem({"cache_reuse": 0}, 512) is None


def test_lone_requests_are_no_conversation() -> None:
    assert not sessions.conversational({})
    assert sessions.conversational({"turns": 2}) and sessions.conversational({"prefix_tokens": 8})
    assert sessions.longest({"turns": 3, "prefix_tokens": 10, "prompt_tokens": 5, "max_tokens": 2,
                             "length_spread": 0.2}) == 10 + 3 * (6 + 2)


# The derivations on recorded real conversations (tests/data/sessions-0c1e570-gemma3-270m-cold-warm.json).

RECORDED = json.loads((Path(__file__).parent / "data" / "sessions-0c1e570-gemma3-270m-cold-warm.json").read_text())


def recorded_turns() -> pd.DataFrame:
    return pd.DataFrame([row for cell in RECORDED for row in derived.turn_rows(cell)])


def test_each_turn_of_a_recorded_cell_is_one_row_with_its_reused_share() -> None:
    for cell in RECORDED:
        rows = derived.turn_rows(cell)
        assert [row["turn"] for row in rows] == [1, 2, 3] and all(row["requests"] == 2 for row in rows)
        reused = [row["reused_share"] for row in rows]
        if cell["params"]["cache"] == "warm":  # the history found in the slot, short of the checkpoint's few tokens
            assert reused[0] == 0 and all(0.5 < share < 1 for share in reused[1:])
        else:
            assert reused == [0, 0, 0]
        lengths = [row["prompt_tokens_mean"] for row in rows]
        assert lengths == [64 + 16, 64 + 16 + 4 + 16, 64 + 2 * (16 + 4) + 16]
    assert derived.turn_rows({**RECORDED[0], "params": {**RECORDED[0]["params"], "turns": 1,
                                                        "prefix_tokens": 0}}) == []


def test_the_cache_is_compared_turn_by_turn_paired_by_round() -> None:
    [effect] = derived.effects(recorded_turns(), alpha=0.05)
    assert (effect["axis"], effect["baseline"], effect["value"]) == ("cache", "cold", "warm")
    assert [t["turn"] for t in effect["turns"]] == [1, 2, 3] and all(t["rounds"] == 2 for t in effect["turns"])
    later = effect["turns"][2]
    assert later["ratio"] < 0.6 and later["candidate_ms"] < later["baseline_ms"]
    assert later["reused_candidate"] > 0.5 and later["reused_baseline"] == 0
    # two rounds: a t-interval on one degree of freedom is wide, and the verdict says only what it supports
    assert effect["stated"]["turn"] == 3 or effect["stated"]["verdict"] == "improved"
    assert all(t["verdict"] in ("improved", "no significant difference") for t in effect["turns"])


def test_conversations_in_flight_and_their_goodput_from_recorded_requests() -> None:
    requests = RECORDED[0]["serving"]["requests"]  # two conversations one after the other (concurrency 1)
    facts = derived.cell_facts(requests)
    assert facts["sessions"] == 2 and 0.8 < facts["concurrent_sessions"] <= 1.0
    assert facts["wait_p50_ms"] < facts["prefill_p50_ms"]
    window = max(r["done_s"] for r in requests) - min(r["sent_s"] for r in requests)
    assert derived.session_goodput(requests, [True] * len(requests), window) == pytest.approx(120 / window)
    one_bad = [r["session"] == 0 for r in requests]  # a miss in any turn fails its whole conversation
    assert derived.session_goodput(requests, one_bad, window) == pytest.approx(60 / window)

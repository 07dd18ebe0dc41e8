"""Tuning studies through Snakemake, with real llama-bench cells: a budget that ends a study without a winner,
raising it to extend the study, an interrupted study resumed without measuring anything twice, a candidate
that fails dropped with its reason while the study goes on; and a served objective raced with real
llama-servers."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import interrupt_when, load_test_config, mtimes, snakemake, write_config
from llamabench import tune_round
from llamabench.core import configuration, plan, records
from llamabench.derive import latency, race

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake

TARGET = "results/tune/quick.json"


def tune_config(rounds: int) -> dict[str, Any]:
    """The small test config and a study: two names for the defaults and a candidate llama-bench rejects. At an
    error rate of 1e-9 no test can drop a copy or call the two equivalent in a few rounds (a first-round screen
    would need them 9 % apart), so only the budget ends the study."""
    config = load_test_config()
    config["tune"] = {"quick": {"candidates": {"copy": {}, "broken": {"cache_type_k": "nonsense"}},
                                "budget": {"rounds": rounds}, "race_rounds": 8, "min_rounds": 2, "alpha": 1e-9}}
    return config


def cells(workdir: Path) -> dict[Path, int]:
    return mtimes(workdir / "results" / "tune" / "quick" / "cells")


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory, rpc_build: dict[str, Any]) -> Path:
    workdir = tmp_path_factory.mktemp("tune")
    write_config(workdir, tune_config(2))
    snakemake(workdir, "--cores", "2", TARGET)
    return workdir


def test_a_spent_budget_ends_the_study_without_a_winner_and_drops_the_failed_candidate(study_dir: Path) -> None:
    found = records.read(study_dir / TARGET, "tune")
    [result] = found["results"]
    assert result["end_reason"] == "budget" and result["budget_spent"]
    assert result["sentence"].startswith("Best so far, no winner claimed")
    broken = next(c for c in result["candidates"] if "broken" in c["label"])
    assert broken["fate"] == "dropped" and broken["dropped_round"] == 1
    assert broken["reason"].startswith("failed:")
    # the two names of the defaults are two cells, each measured in both rounds
    assert len(cells(study_dir)) == 2 * 2 + 1
    assert result["spent"]["rounds"] == 2
    assert result["llama_bench"].startswith("results/builds/cpu-rpc/bin/llama-bench -m results/models/gemma3-270m/")
    assert "-t 2 -b 2048 -ub 512" in result["llama_bench"]
    server = "results/builds/cpu-rpc/bin/llama-server -m results/models/gemma3-270m/model.gguf --host 127.0.0.1"
    assert result["llama_server"].startswith(server)
    assert "-t 2 -b 2048 -ub 512 -ngl 99 -fa auto" in result["llama_server"] and "-c 1024" in result["llama_server"]
    assert "cache_type_k: f16" in result["config"]
    assert result["flags"] == ""  # the best so far is the defaults (or their copy): nothing to add


def test_a_winners_changes_read_as_this_builds_server_flags(study_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                            ) -> None:
    """What a winner changes from the defaults, spelled as the real llama-server's ``--help`` says (the study's
    own winners here are the defaults, which change nothing)."""
    monkeypatch.chdir(study_dir)  # the build record's paths are the workflow's, relative to its directory
    the_plan = plan.make(configuration.resolve(tune_config(2)))
    study = the_plan.studies["quick"]
    reference = study.by_id[study.reference].params
    measured = records.read(next(iter(cells(study_dir))), "bench_cell")
    build = records.read(study_dir / "results/builds/cpu-rpc/manifest.json", "build")
    winner = {**reference, "ubatch_size": 128, "flash_attn": "off"}
    said = tune_round.commands(study.kind, winner, reference, measured, build, the_plan.config)
    assert said["flags"] == "-ub 128 -fa off"
    assert "-ub 128" in said["llama_server"] and "-fa off" in said["llama_server"]
    assert tune_round.commands(study.kind, reference, reference, measured, build, the_plan.config)["flags"] == ""


def test_raising_the_budget_extends_the_study_and_an_interrupted_run_resumes_measuring_nothing_twice(
        study_dir: Path) -> None:
    before = cells(study_dir)
    write_config(study_dir, tune_config(4))
    interrupt_when(study_dir, TARGET, lambda: any("_round-3" in p.name for p in cells(study_dir)),
                   "round 3 never started")
    left = subprocess.run(["pgrep", "-f", "llama-bench -m"], capture_output=True).stdout
    assert not left, "llama-bench outlived Ctrl-C"
    interrupted = cells(study_dir)
    assert all(interrupted[p] == mtime for p, mtime in before.items()), "a cell of the first run was measured again"
    out = snakemake(study_dir, "--cores", "2", TARGET)
    after = cells(study_dir)
    assert all(after[p] == mtime for p, mtime in interrupted.items()), "a cell measured before was measured again"
    ran = len(re.findall(r"Finished jobid: \d+ \(Rule: tune_cell\)", out.stdout + out.stderr))
    assert ran == len(after) - len(interrupted)
    [result] = records.read(study_dir / TARGET, "tune")["results"]
    assert result["spent"]["rounds"] == 4 and result["end_reason"] == "budget"
    assert len(after) == 2 * 4 + 1
    # and once ended, nothing to do
    assert "Nothing to be done" in (lambda o: o.stdout + o.stderr)(snakemake(study_dir, "-n", "--cores", "2", TARGET))



def test_narrowing_the_space_decides_again_and_keeps_every_cell_still_valid(study_dir: Path) -> None:
    """Without the rejected candidate the study's decisions are taken again (seconds); every round of the two
    that remain is kept, so nothing is measured."""
    config = tune_config(4)
    del config["tune"]["quick"]["candidates"]["broken"]
    write_config(study_dir, config)
    before = cells(study_dir)
    out = snakemake(study_dir, "--cores", "2", TARGET)
    text = out.stdout + out.stderr
    assert "Rule: tune_round" in text and "Rule: tune_cell" not in text
    assert cells(study_dir) == before
    [result] = records.read(study_dir / TARGET, "tune")["results"]
    assert result["spent"] == {**result["spent"], "rounds": 4, "candidates": 2}
    assert not any("broken" in c["label"] for c in result["candidates"])

def test_a_served_ttft_study_races_real_servers_and_a_ttft_limit_fails_a_round(tmp_path: Path,
                                                                              rpc_build: dict[str, Any]) -> None:
    config = load_test_config()
    config["tune"] = {"served": {"objective": {"metric": "ttft"}, "workload": {"requests": 4},
                                 "space": {"threads": [1, 2]}, "budget": {"rounds": 2}, "race_rounds": 2,
                                 "min_rounds": 2}}
    write_config(tmp_path, config)
    snakemake(tmp_path, "--cores", "2", "results/tune/served.json")
    found = records.read(tmp_path / "results" / "tune" / "served.json", "tune")
    [result] = found["results"]
    assert found["unit"] == "ms" and result["winner"] is not None
    paths = sorted((tmp_path / "results" / "tune" / "served" / "serving").rglob("*.json"))
    cells = [records.read(p, "serve_cell") for p in paths]
    assert len(cells) >= 2 and {c["study"] for c in cells} == {"served"}
    assert all(len(c["serving"]["requests"]) == 4 for c in cells if c["serving"]["status"] == "ok")
    # the winner's server command line is the one it was measured with; llama-bench gets the same settings
    measured = {c["serving"]["command_line"] for c in cells if c["base_cell"] == result["winner"]["id"]}
    assert result["llama_server"] in measured
    assert f"-t {result['winner']['params']['threads']} " in result["llama_bench"]
    assert "-p 16 -n 4" in result["llama_bench"]
    assert "served time to first token" in result["sentence"]
    # what the winner changes, as the flags to add to the server's command line
    threads = result["winner"]["params"]["threads"]
    assert result["flags"] == ("" if result["winner"]["label"] == "defaults" else f"-t {threads}")
    assert (f"(flags -t {threads})" in result["sentence"]) == bool(result["flags"])
    # a throughput objective's TTFT limit, on these real requests: a round over it fails the candidate
    ok = next(c for c in cells if c["serving"]["status"] == "ok")
    over = race.cell_observation("serve_cell", ok, {"metric": "throughput", "ttft_p90_limit_ms": 0.001}, None)
    assert over["why"].startswith("TTFT p90") and "over the study's limit of 0.001 ms" in over["why"]
    under = race.cell_observation("serve_cell", ok, {"metric": "throughput", "ttft_p90_limit_ms": 1e9}, None)
    tps = latency.request_metrics(ok["serving"]["requests"], ok["serving"]["wall_s"], {"p90": 1, "p99": 1})
    assert under["x"] == pytest.approx(math.log(tps["aggregate_tps"]))

"""Bisect and history studies through Snakemake, on a real git history of llama.cpp (tests/git_history.py).

The history: commit 0 is the default source's tree (the commit conftest.git_build
builds, so the good endpoint is a cache hit), then N = 8 commits: #2 does not
compile, #3 restores it, #5 sleeps 20 ms in every graph plan (generation about
half as fast: a thread cap, 0.7-0.8x on this VM, left a CI run's culprit
inconclusive within its noise), every other one edits a document. One run
holds four bisects and a history study; they share every build:

- ``slow``: good = 0, bad = 8, the cells a comparison of two configured builds (0 and 8) found regressed: the
  culprit #5 with at most ceil(log2 8) + 2 = 5 builds (the good endpoint a cache hit);
- ``skip``: good = 0, bad = 5: its first probe (#2) does not build, is skipped, and #5 is still named;
- ``nothing``: good = 0, bad = 4: a null history (no slowdown) ends "no regression found", reusing the builds;
- ``every-2``: a history of every second commit: the step between #4 and #6 found and confirmed;
- ``seeded``: the bisect of that confirmed change, which names #5.

Cold, the run compiles #8 (the configured build, every binary), #4, #6, #5, #3 (llama-bench alone, ~25 s each
with ccache) and tries #2 (~7 s); measuring takes ~3 minutes.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conftest import GEMMA, RPC_OPTIONS, snakemake, snakemake_console, write_config
from git_history import BROKEN_SUBJECT, PAUSE_SUBJECT, extend, git
from llamabench import bisect_study, history_range
from llamabench.core import records
from llamabench.core.errors import UserError

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake

N, CULPRIT, BROKEN = 8, 5, 2
PAUSE_US = 20_000  # per graph plan: one per generated token
CELLS = [{"n_prompt": 0, "n_gen": 16}]
LONG_GEN = 128  # each repetition ~2.5 s: longer than the console's 1 s poll, so each shows


@pytest.fixture(scope="module")
def history(upstream: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The repository (a clone of conftest's one-commit repository) and its commits, good first."""
    repo = tmp_path_factory.mktemp("history") / "llama.cpp"
    subprocess.run(["git", "clone", "-q", str(upstream), str(repo)], check=True)
    return [str(repo), *extend(repo, N, culprit=CULPRIT, broken=BROKEN, pause_us=PAUSE_US)]


@pytest.fixture(scope="module")
def run(history: list[str], git_build: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo, *commits = history
    workdir = tmp_path_factory.mktemp("bisect")
    study = {"source": "upstream", "cells": CELLS}
    url = Path(repo).as_uri()
    # the configured bad build: #8 plus a note of this run's own, a commit no cache has seen (a real, cheap build
    # served by ccache, whose console progress test_progress_on_the_console reads)
    git(Path(repo), "checkout", "-q", "-b", "fresh")
    (Path(repo) / "docs" / "history-notes.md").write_text(f"- run {os.getpid()} {time.time_ns()}\n")
    git(Path(repo), "commit", "-q", "-am", "docs : a note of this run")
    git(Path(repo), "checkout", "-q", "master")
    write_config(workdir, {
        "sources": {"upstream": {"kind": "git", "url": url, "ref": "b9999"},
                    "upstream-bad": {"kind": "git", "url": url, "ref": "fresh"}},
        "builds": {"cpu-rpc": {"cmake_options": RPC_OPTIONS, "source": "upstream"},
                   "cpu-rpc-bad": {"cmake_options": RPC_OPTIONS, "source": "upstream-bad"}},
        "models": {"gemma3-270m": GEMMA},
        "smoke": {"n_predict": 4},
        # and one long cell (generation repetitions for a console to follow), on the good build alone. 5 rounds: a
        # CI run's 3 (x0.83, x0.68, x0.81 on a noisy VM) left the comparison at p 0.055, and nothing to bisect
        "benchmark": {"builds": [], "repetitions": 2, "rounds": 5, "defaults": CELLS[0], "exclude": [],
                      "groups": {"long": {"builds": ["cpu-rpc"], "n_gen": [LONG_GEN]}}},
        "serving": {"builds": [], "scenarios": {}},
        "rpc": {"topologies": {}},
        "comparisons": {"upgrade": {"baseline": "cpu-rpc", "builds": ["cpu-rpc-bad"]}},
        # the cells (and metric) the comparison found regressed
        "bisect": {"slow": {"source": "upstream", "build": "cpu-rpc", "good": "b9999", "bad": "master",
                            "comparison": "upgrade"},
                   "skip": {**study, "good": "b9999", "bad": commits[CULPRIT]},
                   "nothing": {**study, "good": "b9999", "bad": commits[4]},
                   "seeded": {**study, "history": "every-2"}},
        "history": {"every-2": {**study, "from": "b9999", "to": "master", "every": 2}},
    })
    console = snakemake_console(workdir, "--cores", "2")
    (workdir / "console.json").write_text(json.dumps(console))
    return workdir / "results"


def study(results: Path, name: str) -> dict[str, Any]:
    return records.read(results / "bisect" / f"{name}.json", "bisect_study")


def test_the_culprit_of_a_comparisons_regression_within_log2_n_plus_2_builds(run: Path, history: list[str],
                                                                            ) -> None:
    commits = history[1:]
    compared = records.read_table(run / "comparisons.csv", "comparison_row")
    [regressed] = compared[(compared["name"] == "upgrade") & (compared["verdict"] == "regressed")].itertuples()
    found = study(run, "slow")
    assert found["outcome"] == "culprit", found["sentence"]
    assert found["metric"] == "tg" and found["probes"][0]["rounds"] >= 3
    assert {p.parent.name for p in (run / "bisect/slow/cells").rglob("*.json")} == {"gemma3-270m"}
    assert {p.stem for p in (run / "bisect/slow/cells/probe-0").rglob("*.json")} >= {regressed.baseline_cell}
    assert found["culprit"]["commit"] == commits[CULPRIT] and found["culprit"]["subject"] == PAUSE_SUBJECT
    assert commits[CULPRIT][:9] in found["sentence"]
    built = {b["position"]: b for b in found["builds"]}
    assert len(built) <= math.ceil(math.log2(N)) + 2, built
    assert set(built) == {0, N, 4, 6, 5}  # the endpoints, then the middle of each open range
    assert built[0]["cache_hit"]  # the good endpoint: the commit conftest.git_build compiled
    *search, confirmation = found["probes"]
    verdicts = {p["target"]: p["verdict"] for p in search if p["target"] is not None}
    assert verdicts == {4: "good", 6: "bad", 5: "bad"}
    # then named only once measured slower than its parent beside it
    assert (confirmation["target"], confirmation["parent"], confirmation["verdict"]) == (5, 4, "confirmed")
    assert confirmation["vs_parent"]["ratio"] < 0.9
    endpoints = found["probes"][0]["endpoints"]
    assert endpoints["ratio"] < 0.9 and endpoints["p_value"] < 0.05
    # every probe was measured beside both endpoints, in its own rounds
    cells = list((run / "bisect" / "slow" / "cells").glob("probe-*/*/*/*.json"))
    # the endpoints alone, then three trios, then the culprit beside its parent and the endpoints, 3 rounds each
    # (more where a disturbed round left a test undecided)
    assert len(cells) == found["cells"] >= 3 * 2 + 3 * 3 * 3 + 3 * 4
    assert found["measuring_s"] > 0 and (run / "bisect" / "slow.png").stat().st_size > 0


def test_a_cell_two_steps_asked_for_is_counted_once(run: Path, tmp_path: Path) -> None:
    """A step that gives a probe another round asks for its earlier rounds again (a CI run's study counted 41
    cells of 35 and their seconds twice): the study, fed such an input, counts and times each cell once."""
    found = study(run, "slow")
    cells = sorted(str(p) for p in (run / "bisect/slow/cells").glob("probe-*/*/*/*.json"))
    steps = [str(run / f"bisect/slow/steps/step-{n}.json") for n in range(found["steps"])]
    again = tmp_path / "slow.json"
    bisect_study.bisect_study(SimpleNamespace(
        input=SimpleNamespace(steps=steps, builds=[], cells=cells + cells[:6]),
        wildcards=SimpleNamespace(study="slow"),
        params=SimpleNamespace(settings=found["settings"], build=found["build"], models=found["models"]),
        output=SimpleNamespace(record=str(again), png=str(tmp_path / "slow.png"), svg=str(tmp_path / "slow.svg"))))
    counted = records.read(again, "bisect_study")
    assert counted["cells"] == len(cells) == found["cells"]
    assert counted["measuring_s"] == found["measuring_s"] > 0


def test_a_commit_that_does_not_build_is_skipped(run: Path, history: list[str]) -> None:
    commits = history[1:]
    probe = records.read(next((run / "probes").glob(f"upstream/cpu-rpc/{commits[BROKEN]}/manifest.json")),
                         "probe_build")
    assert probe["status"] == "build_failed" and probe["built"] is None and "cmake build" in probe["error"]
    assert "error" in Path(run.parent / probe["log"]).read_text()
    found = study(run, "skip")
    assert found["outcome"] == "culprit" and found["culprit"]["commit"] == commits[CULPRIT]
    verdicts = [(p["target"], p["verdict"]) for p in found["probes"] if p["target"] is not None]
    assert verdicts[0] == (BROKEN, "build_failed") and verdicts[1][0] == BROKEN + 1
    assert git(Path(history[0]), "log", "-1", "--format=%s", commits[BROKEN]) == BROKEN_SUBJECT


def null_searched(run: Path) -> bool:
    """Whether the null history's endpoints were called apart, which a test at alpha does now and then: a CI run's,
    two builds of the same code, measured 0.945x in the first 5 rounds (5 of 5 slower, p 0.019, more rounds having
    been taken while it looked slower) and 0.995x beside the probe the search then made."""
    return study(run, "nothing")["outcome"] != "no regression found"


def test_a_null_history_finds_no_regression(run: Path) -> None:
    """It never names a commit: "no regression found", or where its endpoints' first test was a false alarm, the
    search's own trio catches it (its endpoints do not separate) and the study ends with the range open."""
    found = study(run, "nothing")
    assert found["culprit"] is None
    if null_searched(run):
        assert found["outcome"] == "inconclusive", found["sentence"]
        assert "its endpoints did not differ in its rounds" in found["sentence"]
        return
    assert found["sentence"].startswith("no regression found")
    assert {b["position"] for b in found["builds"]} == {0, 4}  # the endpoints, built once for the slow study too
    slow = {b["commit"] for b in study(run, "slow")["builds"]}
    assert {b["commit"] for b in found["builds"]} <= slow


def test_each_commit_was_compiled_once(run: Path, history: list[str]) -> None:
    probes = [records.read(p, "probe_build") for p in (run / "probes").glob("*/*/*/manifest.json")]
    # 0, 2-6, 8: every study shares them (and 1, where the null history's search probed it)
    assert len(probes) == len({p["commit"] for p in probes}) == 7 + null_searched(run)
    assert sum(p["status"] == "ok" and not p["built"]["cache_hit"] for p in probes) <= 5
    # llama-bench alone, where no configured build of the commit (0, and 8 if it was first) had every binary
    assert all(p["built"]["binaries"]["bench"] == "llama-bench" for p in probes if p["built"])
    assert all(p["built"]["binaries"] == {"bench": "llama-bench"} for p in probes
               if p["built"] and p["commit"] not in (history[1], history[-1]))


def test_history_finds_the_step_and_seeds_a_bisect(run: Path, history: list[str]) -> None:
    commits = history[1:]
    found = records.read(run / "history-studies" / "every-2.json", "history_study")
    assert [p["position"] for p in found["series"]] == [0, 2, 4, 6, 8]
    assert [p["status"] for p in found["series"]] == ["ok", "build_failed", "ok", "ok", "ok"]
    confirmed = [c for c in found["changes"] if c["confirmed"]]
    assert len(confirmed) == 1, found["changes"]
    assert (confirmed[0]["before"], confirmed[0]["after"]) == (commits[4], commits[6])
    assert confirmed[0]["direction"] == "slower" and confirmed[0]["ratio"] < 0.9
    seeded = study(run, "seeded")
    assert seeded["commits"][0]["commit"] == commits[4] and seeded["commits"][-1]["commit"] == commits[6]
    assert seeded["outcome"] == "culprit" and seeded["culprit"]["commit"] == commits[CULPRIT]


def test_findings_report_and_a_rerun(run: Path, history: list[str]) -> None:
    commits = history[1:]
    table = records.read_table(run / "findings.csv", "finding_row")
    culprits = table[table["question"] == "bisect_culprit"].set_index("subject")
    assert culprits.loc["slow", "answer"] == f"{commits[CULPRIT][:9]} {PAUSE_SUBJECT}"
    assert culprits.loc["nothing", "verdict"] == study(run, "nothing")["outcome"]
    assert not culprits.loc["nothing", "significant"]
    changes = table[(table["question"] == "history_change") & table["significant"].fillna(False).astype(bool)]
    assert list(changes["answer"]) == [f"{commits[6][:9]} docs : note 6"]
    page = (run / "report.html").read_text()
    assert "Performance over llama.cpp" in page and commits[CULPRIT] in page and PAUSE_SUBJECT in page
    out = snakemake(run.parent, "--cores", "2", "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


def test_a_historys_commits_every_nth_tagged_or_listed(history: list[str], tmp_path: Path) -> None:
    """The range a history study resolves, from a mirror of the repository (whole history, no blobs)."""
    repo, *commits = history
    url = Path(repo).as_uri()
    git(Path(repo), "tag", "b10003", commits[3])
    git(Path(repo), "tag", "b10006", commits[6])
    base = {"from": "b9999", "to": "master", "every": 1, "tags": False, "refs": []}
    every3 = history_range.series({**base, "every": 3}, url, cache=tmp_path)
    assert [c["position"] for c in every3] == [0, 3, 6, 8] and [c["commit"] for c in every3] == [
        commits[p] for p in (0, 3, 6, 8)]
    tagged = history_range.series({**base, "tags": True}, url, cache=tmp_path)
    assert [c["position"] for c in tagged] == [0, 3, 6, 8]
    listed = history_range.series({**base, "refs": ["b10006", commits[1]]}, url, cache=tmp_path)
    assert [(c["commit"], c["position"]) for c in listed] == [(commits[6], 0), (commits[1], 1)]
    assert listed[0]["subject"] == "docs : note 6"
    with pytest.raises(UserError, match="no ref or commit 'b12345'"):
        history_range.series({**base, "to": "b12345"}, url, cache=tmp_path)
    with pytest.raises(UserError, match="is not an ancestor"):
        history_range.series({**base, "from": "master", "to": "b9999"}, url, cache=tmp_path)


def test_progress_on_the_console(run: Path) -> None:
    """The fresh build and the long cells say where they are, about every 10 s (or 10 % of a build), no more."""
    lines = json.loads((run.parent / "console.json").read_text())
    build = [(t, text) for t, text in lines if text.startswith("llamabench: build 'cpu-rpc-bad': ")]
    assert len(build) >= 2, "\n".join(text for _, text in lines if "llamabench:" in text)
    found = [re.search(r": (\d+)/(\d+) targets, ccache (\d+)/(\d+) hits$", text) for _, text in build]
    assert all(found), build
    done = [int(m[1]) for m in found]
    assert done == sorted(done) and int(found[-1][3]) > 0  # ninja counts up; ccache served some of it
    span = build[-1][0] - build[0][0]
    assert len(build) <= span / 10 + 12  # every 10 s, or a tenth of the targets, and the end
    gaps = [b[0] - a[0] for a, b in zip(build, build[1:])]
    assert max(gaps) <= 10 + 5, gaps  # and a build that works is never silent much longer
    # the configured bad build's source: a commit no cache has seen, fetched with git's counts, to the end
    fetched = [text for _, text in lines if text.startswith("llamabench: download fresh: ")]
    assert fetched and re.fullmatch(r"llamabench: download fresh: (\d+)/\1 objects, [\d.]+ MiB", fetched[-1]), fetched
    # the run's remaining time, from the durations of the jobs already done (the plugin's record starts empty)
    left = [(t, re.match(r"llamabench: run: (\d+)/(\d+) jobs done, about (\d+) (s|min) left", text))
            for t, text in lines if text.startswith("llamabench: run: ")]
    assert left and left[0][1] is None  # at the start no job of this workdir was ever timed
    estimates = [(t, m) for t, m in left if m]
    assert len(estimates) >= 3, left
    done = [int(m[1]) for _, m in estimates]
    assert done == sorted(done) and all(int(m[1]) < int(m[2]) for _, m in estimates)
    assert len(left) <= (left[-1][0] - left[0][0]) / 10 + 11  # every 10 s at most, or a tenth of the run
    cells = {}
    for t, text in lines:
        if m := re.match(rf"llamabench: cell (cpu-rpc/gemma3-270m/\S+_n{LONG_GEN}\S*): benchmark \d+/\d+: (.*)$", text):
            cells.setdefault(m[1], []).append((t, m[2]))
    assert len(cells) >= 3  # the long cell, each round (and one more for a disturbed one)
    for shown in cells.values():
        # then each repetition (half of the work each), and never two lines for the same one
        assert shown[0][1] == "starting" and [text for _, text in shown[1:]] == [
            "generation run 1/2", "generation run 2/2"], shown

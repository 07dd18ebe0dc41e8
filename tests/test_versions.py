"""Two llama.cpp versions side by side (presets/compare-versions), for real: both built, measured in
interleaved rounds, compared cell by cell, exported in llama-bench's SQLite schema and read back by
upstream's own scripts/compare-llama-bench.py; a build whose source changes keeps its old cells.

The builds use the RPC options of the rest of the suite, so both versions are cache hits after
tests/test_old_tree.py (mid-2025 tree) and conftest's build (current tree).
"""

from __future__ import annotations

import copy
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from conftest import RPC_OPTIONS, ROOT, snakemake, write_config
from llamabench import export
from llamabench.core import records
from llamabench.derive import statistics
from test_workflow import AFTER_A_FIRST_ROUND, job_counts

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake

PRESET = ROOT / "presets" / "compare-versions" / "config" / "config.yaml"
OLD, NEW = "cpu@0.3.14", "cpu@0.3.36"


def preset_config() -> dict[str, Any]:
    """The documented preset, cut to a few small cells (two rounds, so the paired test can run)."""
    config = yaml.safe_load(PRESET.read_text())
    for build in config["builds"].values():
        build["cmake_options"] = list(RPC_OPTIONS)
    config["smoke"] = {"n_predict": 4}
    config["benchmark"].update(rounds=2, repetitions=1, groups={"threads": {"threads": [1, 2]}}, exclude=[])
    config["benchmark"]["defaults"].update(n_prompt=16, n_gen=4)
    return config


@pytest.fixture(scope="module")
def versions_dir(tmp_path_factory: pytest.TempPathFactory, rpc_build: dict[str, Any]) -> Path:
    workdir = tmp_path_factory.mktemp("versions")
    write_config(workdir, preset_config())
    snakemake(workdir, "--cores", "2", timeout=3600)
    return workdir


def sources(workdir: Path) -> dict[str, dict[str, Any]]:
    return {p.parent.name: records.read(p, "source") for p in (workdir / "results/sources").glob("*/manifest.json")}


def test_each_build_is_built_from_its_own_source(versions_dir: Path) -> None:
    found = sources(versions_dir)
    for build, source in [(OLD, "v0.3.14"), (NEW, "v0.3.36")]:
        record = records.read(versions_dir / f"results/builds/{build}/manifest.json", "build")
        assert record["source"] == source and record["commit"] == found[source]["commit"]
    assert found["v0.3.14"]["commit"] != found["v0.3.36"]["commit"]


def test_the_named_comparison_covers_every_shared_cell(versions_dir: Path) -> None:
    summary = pd.read_csv(versions_dir / "results/summary.csv")
    assert set(summary["status"]) == {"ok"}, summary["error"].dropna().tolist()
    shared = summary.groupby(["base_cell", "test"])["build"].nunique()
    pairs = pd.read_csv(versions_dir / "results/comparisons.csv")
    upgrade = pairs[pairs["name"] == "upgrade"]
    assert len(upgrade) == (shared == 2).sum() == 4  # 2 cells x pp, tg
    assert set(upgrade["baseline_build"]) == {OLD} and set(upgrade["candidate_build"]) == {NEW}
    assert set(upgrade["paired_rounds"]) == {2} and upgrade["ratio_ci_low"].notna().all()
    assert set(upgrade["verdict"]) <= {statistics.IMPROVED, statistics.REGRESSED, statistics.NO_DIFFERENCE}
    assert (versions_dir / "results/figures/comparison_upgrade.png").stat().st_size > 0
    table = pd.read_csv(versions_dir / "results/figures_table.csv")
    assert table["metric"].str.startswith("largest significant change").sum() == 2  # pp and tg
    report = (versions_dir / "results/report.html").read_text()
    assert "Version comparisons" in report and "ratio [95 % CI]" in report


def compare_llama_bench(workdir: Path, database: str, baseline: str, candidate: str) -> str:
    """Upstream's script, from the current source tree, outside any git checkout (as a user would run it)."""
    script = Path(sources(workdir)["v0.3.36"]["source_dir"]) / "scripts" / "compare-llama-bench.py"
    out = subprocess.run([sys.executable, str(script), "-i", str(workdir / "results" / database),
                          "-b", baseline, "-c", candidate], capture_output=True, text=True, timeout=120,
                         cwd=workdir)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def table_rows(output: str) -> list[str]:
    """The data rows of the script's pipe table (after the header and its rule)."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    return lines[2:]


def test_upstream_compare_script_joins_the_two_versions_from_the_sqlite_export(versions_dir: Path) -> None:
    found = sources(versions_dir)
    rows = table_rows(compare_llama_bench(versions_dir, "llama-bench.sqlite", found["v0.3.14"]["commit"],
                                          found["v0.3.36"]["commit"]))
    # One row per shared cell and test: threads 1 and 2, pp16 and tg4.
    assert len(rows) == 4, rows
    assert {re.search(r"\| (pp16|tg4) ", row).group(1) for row in rows} == {"pp16", "tg4"}


def test_the_per_build_export_tells_two_builds_apart_for_the_same_script(versions_dir: Path) -> None:
    with sqlite3.connect(versions_dir / "results/llama-bench-builds.sqlite") as db:
        labels = dict(db.execute("SELECT DISTINCT build_commit, source_commit FROM llama_bench").fetchall())
    assert set(labels) == {OLD, NEW} and len({len(label) for label in labels}) == 1
    assert len(table_rows(compare_llama_bench(versions_dir, "llama-bench-builds.sqlite", OLD, NEW))) == 4


def test_the_export_has_llama_benchs_columns_and_one_spelling(versions_dir: Path) -> None:
    with sqlite3.connect(versions_dir / "results/llama-bench.sqlite") as db:
        columns = [(row[1], row[2]) for row in db.execute("PRAGMA table_info(llama_bench)")]
        spelled = db.execute("SELECT DISTINCT flash_attn, backends, model_type, load_mode FROM llama_bench").fetchall()
    assert columns == list(export.FIELDS.items())
    assert len(spelled) == 1 and spelled[0][0] == 1 and "?" not in spelled[0][2], spelled
    lines = (versions_dir / "results/llama-bench.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 2 * 2 * 2  # builds x cells x rounds x tests


def test_adding_a_third_source_runs_only_its_build_and_cells(versions_dir: Path) -> None:
    config = preset_config()
    tree = sources(versions_dir)["v0.3.36"]["source_dir"]
    config["sources"]["mine"] = {"kind": "path", "path": tree}
    config["builds"]["cpu@mine"] = {"source": "mine", "cmake_options": list(RPC_OPTIONS)}
    write_config(versions_dir, config)
    try:
        out = snakemake(versions_dir, "-n", "--cores", "2")
    finally:
        write_config(versions_dir, preset_config())
    assert job_counts(out.stdout + out.stderr) == {"source": 1, "build": 1, "smoke": 1, "bench_cell": 4,
                                                   **AFTER_A_FIRST_ROUND}


def test_changing_a_builds_source_keeps_its_old_cells_as_history(versions_dir: Path, tmp_path: Path) -> None:
    """The old build moves to the current tree: its cells of the old commit are kept under
    results/history/<build>@<commit>/ and still read, labelled, beside the new ones."""
    config = preset_config()
    config["builds"][OLD]["source"] = "v0.3.36"
    config["comparisons"] = {"upgrade": {"baseline": f"{OLD}@79e0b68", "builds": [OLD]}}
    old_cells = sorted(p.name for p in (versions_dir / f"results/cells/{OLD}").rglob("*.json"))
    write_config(versions_dir, config)
    try:
        snakemake(versions_dir, "--cores", "2", timeout=3600)
    finally:
        write_config(versions_dir, preset_config())
    kept = versions_dir / "results/history" / f"{OLD}@79e0b68"
    assert sorted(p.name for p in (kept / "cells").rglob("*.json")) == old_cells
    assert len(list((kept / "logs/bench_cell").rglob("*.log"))) == len(old_cells)
    summary = pd.read_csv(versions_dir / "results/summary.csv")
    assert set(summary.loc[summary["history"], "build"]) == {f"{OLD}@79e0b68"}
    assert set(summary.loc[~summary["history"], "commit"].str[:7]) == {"0c1e570"}
    pairs = pd.read_csv(versions_dir / "results/comparisons.csv")
    assert len(pairs[pairs["name"] == "upgrade"]) == 4
    with sqlite3.connect(versions_dir / "results/llama-bench.sqlite") as db:
        commits = {row[0][:7] for row in db.execute("SELECT DISTINCT build_commit FROM llama_bench")}
    assert commits == {"79e0b68", "0c1e570"}
    assert f"{OLD}@79e0b68" in (versions_dir / "results/report.html").read_text()


def test_a_mid_2025_llama_bench_cannot_run_an_auto_flash_attention_cell(versions_dir: Path) -> None:
    """Capability detection, not the user: 'auto' has no -fa 0/1 spelling, so that cell is skipped with why."""
    config = copy.deepcopy(preset_config())
    config["benchmark"].update(rounds=1, groups={})
    config["benchmark"]["defaults"]["flash_attn"] = "auto"
    config["comparisons"] = {}
    workdir = versions_dir.parent / "auto-fa"
    write_config(workdir, config)
    snakemake(workdir, "--cores", "2", timeout=3600)
    summary = pd.read_csv(workdir / "results/summary.csv").set_index("build")
    assert summary.loc[OLD, "status"] == "skipped" and "-fa 0/1 only" in summary.loc[OLD, "error"]
    assert set(summary.loc[NEW, "status"]) == {"ok"}
    assert (workdir / "results/failed_cells.txt").read_text() == ""


LOAD_MODES = ["none", "mmap", "mlock", "mmap+mlock", "dio"]


def test_every_load_mode_runs_on_both_trees_or_is_skipped_with_the_reason(versions_dir: Path) -> None:
    """The load-mode axis, both tools, both trees: a current tree says -lm <mode>; a mid-2025 llama-bench says
    -mmp 0|1 (mmap and none only: the other modes are skipped with why), its server --no-mmap and --mlock."""
    config = copy.deepcopy(preset_config())
    config["benchmark"].update(rounds=1, groups={"load": {"load_mode": LOAD_MODES}})
    config["serving"] = {"builds": [], "defaults": {"prompt_tokens": 16, "max_tokens": 4, "requests": 2,
                                                    "ctx_size": 512, "flash_attn": "on"},
                         "scenarios": {"load": {"load_mode": ["none", "mlock"]}}}
    config["comparisons"] = {}
    workdir = versions_dir.parent / "load-modes"
    write_config(workdir, config)
    snakemake(workdir, "--cores", "2", timeout=3600)
    cells = {(c["build"]["name"], c["params"].get("load_mode", "auto")): c
             for c in map(lambda p: records.read(p, "bench_cell"), (workdir / "results/cells").rglob("*.json"))}
    for mode in LOAD_MODES:
        new = cells[(NEW, mode)]["llama_bench"]
        assert new["status"] == "ok", (mode, new.get("error"))
        assert f"-lm {mode}" in new["command_line"] and {r["load_mode"] for r in new["records"]} == {mode}
        old = cells[(OLD, mode)]["llama_bench"]
        if mode in ("none", "mmap"):
            assert old["status"] == "ok" and f"-mmp {int(mode == 'mmap')}" in old["command_line"], old.get("error")
            assert {r["use_mmap"] for r in old["records"]} == {mode == "mmap"}
        else:
            assert old["status"] == "skipped" and "-mmp 0|1 only" in old["error"]
    assert "memlock_limit" in cells[(NEW, "mlock")] and "memlock_limit" not in cells[(NEW, "none")]
    assert "-lm" not in cells[(NEW, "auto")]["llama_bench"]["command_line"]  # the defaults cell: nothing passed
    served = {(c["build"]["name"], c["params"].get("load_mode", "auto")): c["serving"]
              for c in map(lambda p: records.read(p, "serve_cell"), (workdir / "results/serving").rglob("*.json"))}
    assert all(run["status"] == "ok" for run in served.values()), {k: v["error"] for k, v in served.items()}
    assert "-lm mlock" in served[(NEW, "mlock")]["command_line"]
    assert "--no-mmap --mlock" in served[(OLD, "mlock")]["command_line"]
    with sqlite3.connect(workdir / "results/llama-bench.sqlite") as db:
        exported = set(db.execute("SELECT substr(build_commit, 1, 7), load_mode FROM llama_bench"))
    assert ("79e0b68", "none") in exported and ("0c1e570", "dio") in exported
    summary = pd.read_csv(workdir / "results/summary.csv")
    assert set(summary["load_mode"]) == {"auto", *LOAD_MODES}
    assert (workdir / "results/failed_cells.txt").read_text() == ""

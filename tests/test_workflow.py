"""The whole workflow for real, in a scratch directory: run, rerun nothing, rerun only what changed.

One real run of the small test config (.test/config: real build from the shared
cache, real model, real llama-bench), one of the failure-path config
(.test/failure), then dry runs that check Snakemake schedules exactly what a
config or code change calls for.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
import yaml

from conftest import DEFAULT_CONFIG, ROOT, as_in_a_terminal, load_test_config, mtimes, snakemake, write_config
from llamabench.core import configuration, files, matrix, plan, phases, records
from llamabench import plots
from llamabench.measure import machine_lock

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake

# What a workflow copy needs; the copy lets a test edit code without touching the checkout.
WORKFLOW_FILES = ["Snakefile", "workflow", "envs", "profiles"]


def small_config() -> dict[str, Any]:
    """The small test config, and what only these runs measure (the other tests start from .test/config too):
    quality cells of two K/V types and a tuning study within a quality budget."""
    config = load_test_config()
    config["benchmark"]["groups"]["kv_cache"] = {"cache_type_k": ["q8_0"], "cache_type_v": ["q8_0"]}
    # small chunks: plumbing, not statistics (tests/test_quality.py has the recorded ones)
    config["quality"] = {"ctx_size": 128, "chunks": 3, "cells": [{"cache_type_k": "q4_0", "cache_type_v": "q4_0"}]}
    # within a quality budget: q4_0 K (KLD ~0.16 here) is dropped unmeasured, q8_0 (~0.01) races
    config["tune"]["kv"] = {"space": {"cache_type_k": ["f16", "q8_0", "q4_0"]}, "quality": {"max_kld": 0.05},
                            "budget": {"rounds": 2}, "race_rounds": 2, "min_rounds": 2}
    return config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, rpc_build: dict[str, Any]) -> Path:
    """A complete run; the build fixture filled the cache first, so the run's build must be a hit."""
    workdir = tmp_path_factory.mktemp("workflow")
    write_config(workdir, small_config())
    snakemake(workdir, "--cores", "8")
    return workdir


@pytest.fixture(scope="module")
def failure_dir(tmp_path_factory: pytest.TempPathFactory, rpc_build: dict[str, Any]) -> Path:
    workdir = tmp_path_factory.mktemp("failure")
    write_config(workdir, load_test_config("failure"))
    snakemake(workdir, "--cores", "8")
    return workdir


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: {rule: count}."""
    table = output[output.index("Job stats:"):]
    rows = re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.MULTILINE)
    return {rule: int(n) for rule, n in rows if rule != "total"}


def dry_run(workdir: Path, config: dict[str, Any], snakefile: Path = ROOT / "Snakefile") -> dict[str, int]:
    write_config(workdir, config)
    try:
        out = snakemake(workdir, "-n", "--cores", "8", snakefile=snakefile)
    finally:
        write_config(workdir, small_config())
    if "Nothing to be done" in out.stdout + out.stderr:
        return {}
    return job_counts(out.stdout + out.stderr)


def workflow_copy(dest: Path) -> Path:
    """This workflow's code in ``dest``, to be edited there; returns its Snakefile."""
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest / "Snakefile"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {path}"
    path.write_text(text.replace(old, new))


# What follows any cell measured again: the re-measure decision (which reads every planned cell) and every
# aggregation after it.
AFTER_A_CELL = {"remeasure": 1, "summary": 1, "serving_summary": 1, "rpc_summary": 1, "export": 1, "stats": 1,
                "quality_summary": 1, "findings": 1, "figures": 1, "report_html": 1, "all": 1}
# After a round-1 benchmark cell: the memory table too (it compares round 1 of each cell).
AFTER_A_FIRST_ROUND = {**AFTER_A_CELL, "memory_table": 1}


def test_run_produces_every_output(run_dir: Path) -> None:
    results = run_dir / "results"
    for name in ["report.html", "summary.csv", "figures_table.csv", "figures_table.md", "failed_cells.txt",
                 "figures/threads.png", "figures/threads.svg", "figures/batch.png", "figures/gpu_layers.svg",
                 "sources/main/manifest.json", "builds/cpu-rpc/manifest.json", "models/gemma3-270m/manifest.json",
                 "smoke/cpu-rpc/gemma3-270m.json", "benchmarks/build/cpu-rpc.tsv", "serving_summary.csv",
                 "figures/serving_ttft.png", "figures/serving_latency.svg", "rpc_summary.csv", "figures/rpc.png",
                 "rpc_smoke/two-cpu/gemma3-270m.json", "failed_rpc_cells.txt", "failed_serving_cells.txt",
                 "benchmarks/model/gemma3-270m.tsv", "benchmarks/source/main.tsv", "llama-bench.jsonl",
                 "llama-bench.sqlite", "llama-bench-builds.sqlite", "memory.csv", "figures/memory.png",
                 "serving_tokens.jsonl"]:
        assert (results / name).is_file(), name
    smoke = records.read(results / "smoke/cpu-rpc/gemma3-270m.json", "smoke")
    assert smoke["text"].startswith(DEFAULT_CONFIG["smoke"]["prompt"])
    assert smoke["tokens_per_second"]["generation"] > 0
    assert (results / "failed_cells.txt").read_text() == ""


def test_the_build_was_a_cache_hit(run_dir: Path, rpc_build: dict[str, Any]) -> None:
    """A cache-key drift between the tests' build and the workflow's would silently cost a 10-minute build."""
    build = records.read(run_dir / "results/builds/cpu-rpc/manifest.json", "build")
    assert build["cache_hit"] is True
    assert build["cache_key"] == rpc_build["cache_key"]


def test_every_json_record_names_its_kind_and_version_and_validates(run_dir: Path, failure_dir: Path) -> None:
    kinds = set()
    for path in [*(run_dir / "results").rglob("*.json"), *(failure_dir / "results").rglob("*.json")]:
        data = files.read_json(path)
        assert data.get("kind") in records.KINDS and "version" in data, path
        records.read(path, data["kind"])  # raises on any schema violation
        kinds.add(data["kind"])
    assert kinds == {"source", "hardware", "build", "model", "smoke", "bench_cell", "serve_cell", "rpc_cell",
                     "rpc_smoke", "bandwidth", "remeasure", "tune_round", "tune", "quality_text", "quality_cell",
                     "perplexity_build"}
    for name, kind in [("summary.csv", "summary_row"), ("serving_summary.csv", "serving_row"),
                       ("rpc_summary.csv", "rpc_row"), ("stats.csv", "stats_row"), ("metrics.csv", "metric_row"),
                       ("comparisons.csv", "comparison_row"), ("findings.csv", "finding_row"),
                       ("memory.csv", "memory_row"), ("quality.csv", "quality_row")]:
        table = pd.read_csv(run_dir / "results" / name)
        assert list(table.columns) == records.columns(kind)
        for row in table.astype(object).where(table.notna(), None).to_dict("records"):
            assert not records.problems(kind, row), records.problems(kind, row)


def test_failed_cell_is_reported_and_the_others_go_on(failure_dir: Path) -> None:
    results = failure_dir / "results"
    table = pd.read_csv(results / "summary.csv")
    failed = table[table["status"] == "failed"]
    assert list(failed["cache_type_k"]) == ["nonsense"]
    ok = table[table["status"] == "ok"]
    assert ok["cell"].nunique() == 1 and sorted(ok["test"].unique()) == ["pp16", "tg4"]
    report = (results / "report.html").read_text()
    assert "ctk-nonsense" in report and "invalid parameter for argument: -ctk" in report
    listed = (results / "failed_cells.txt").read_text().split()
    assert len(listed) == 1 and "ctk-nonsense" in listed[0]
    record = records.read(failure_dir / listed[0], "bench_cell")
    assert record["llama_bench"]["exit_status"] != 0
    log = failure_dir / record["log"]
    assert log == failure_dir / "results/logs/bench_cell/cpu-rpc/gemma3-270m" / (Path(listed[0]).stem + ".log")
    assert "invalid parameter" in log.read_text()


def test_a_cell_predicted_not_to_fit_is_never_started(failure_dir: Path) -> None:
    """A 2M-token context: its K/V cache alone is predicted at ~6 GB, over memory.limit_mib (4096). llama-bench
    never started (its log holds no llama.cpp line); the record keeps the numbers, the report lists it apart from
    failures, the memory table keeps its prediction without a measurement."""
    results = failure_dir / "results"
    path = next((results / "cells").rglob("*_d2000000_*.json"))
    record = records.read(path, "bench_cell")
    assert record["llama_bench"]["status"] == "predicted_out_of_memory"
    fit = record["memory"]["fit"]
    assert not fit["started"] and fit["over"][0]["device"] == "CPU" and fit["over"][0]["limit_mib"] == 4096
    assert 5000 < fit["over"][0]["predicted_mib"] < 9000
    assert "llama_context" not in (failure_dir / record["log"]).read_text()
    assert record["llama_bench"]["duration_s"] == 0 and record["memory"]["logged"] == []
    assert "d2000000" not in (results / "failed_cells.txt").read_text()
    report = (results / "report.html").read_text()
    section = report[report.index("Not started, predicted not to fit"):report.index('<h2 id="failed">Failed cells')]
    assert "d2000000" in section and "more than its 4096 MiB" in section
    table = pd.read_csv(results / "memory.csv")
    mine = table[table["cell"] == record["base_cell"]]
    assert len(mine) and mine["measured_mib"].isna().all() and set(mine["status"]) == {"predicted_out_of_memory"}


def test_the_memory_table_compares_every_cell_with_what_it_used(run_dir: Path) -> None:
    """Every benchmark and RPC cell's buffers (each worker's apart) against llama.cpp's log, a benchmark cell's
    total against its peak RSS; on this model the buffers are predicted within tolerance, and the findings and
    the report say how well."""
    table = pd.read_csv(run_dir / "results/memory.csv")
    cells, rpc = ({p.stem for p in (run_dir / "results" / folder).rglob("*.json") if "_round-" not in p.stem}
                  for folder in ("cells", "rpc"))
    assert set(table.loc[table["kind"] == "bench_cell", "cell"]) == cells
    assert set(table.loc[table["kind"] == "rpc_cell", "cell"]) == rpc
    components = table[(table["component"] != "total") & (table["predictor"] == "derive/memory.py")]
    assert components["measured_mib"].notna().all() and components["within_tolerance"].all()
    assert components["device"].str.startswith("RPC[127.0.0.1:").sum() >= 2 * 2 * 4  # two workers, two tests
    totals = table[(table["component"] == "total") & (table["kind"] == "bench_cell")]
    assert len(totals) == len(cells) and (totals["measured_mib"] > 200).all() and totals["file_mib"].notna().all()
    assert totals["within_tolerance"].all(), totals[["cell", "predicted_mib", "measured_mib"]]
    found = pd.read_csv(run_dir / "results/findings.csv")
    assert "derive/memory.py" in set(found.loc[found["question"] == "memory_prediction", "subject"])
    assert "Memory: predicted against used" in (run_dir / "results/report.html").read_text()


def test_improving_the_memory_predictor_rebuilds_the_table_and_measures_nothing(run_dir: Path,
                                                                                tmp_path: Path) -> None:
    """The job's prediction only decides whether a cell starts; the table predicts again from the records."""
    snakefile = workflow_copy(tmp_path)
    edit(snakefile.parent / "workflow/scripts/llamabench/derive/memory.py", "CUDA_CONTEXT_MIB = 300.0",
         "CUDA_CONTEXT_MIB = 310.0")
    assert dry_run(run_dir, small_config(), snakefile) == {"memory_table": 1, "quality_summary": 1, "findings": 1,
                                                          "report_html": 1, "all": 1}
    assert undecided(snakefile) == []


def test_the_documented_rerun_of_failed_cells_redoes_only_them(failure_dir: Path) -> None:
    failed = (failure_dir / "results/failed_cells.txt").read_text().split()
    out = snakemake(failure_dir, "-n", "--cores", "8", "--forcerun", *failed)
    assert job_counts(out.stdout + out.stderr) == {"bench_cell": 1, **AFTER_A_FIRST_ROUND}


def test_measurements_never_overlap_even_with_8_cores(run_dir: Path) -> None:
    """Benchmark cells (the matrix's 7 and the serving partner), serving cells, RPC cells and quality cells, one at
    a time."""
    spans = [(cell["llama_bench"]["start_epoch"], cell["llama_bench"]["end_epoch"])
             for cell in map(files.read_json, (run_dir / "results/cells").rglob("*.json"))]
    spans += [(datetime.fromisoformat(cell["serving"]["start"]).timestamp(),
               datetime.fromisoformat(cell["serving"]["end"]).timestamp())
              for cell in map(files.read_json, (run_dir / "results/serving").rglob("*.json"))]
    spans += [(cell["rpc"]["llama_bench"]["start_epoch"], cell["rpc"]["llama_bench"]["end_epoch"])
              for cell in map(files.read_json, (run_dir / "results/rpc").rglob("*.json"))]
    spans += [(cell["start_epoch"], cell["end_epoch"])  # llama-perplexity: the reference and 4 settings
              for cell in map(files.read_json, (run_dir / "results/quality").rglob("*.json")) if "end_epoch" in cell]
    spans.sort()
    assert len(spans) == 12 + 5
    for (_, end), (next_start, _) in zip(spans, spans[1:]):
        assert end <= next_start


def test_cell_records_what_explains_its_numbers(run_dir: Path) -> None:
    config = small_config()
    base = matrix.baseline({**config["benchmark"], "defaults": {**DEFAULT_CONFIG["benchmark"]["defaults"],
                                                                 **config["benchmark"]["defaults"]}})
    cell = records.read(run_dir / "results/cells/cpu-rpc/gemma3-270m" / f"{matrix.cell_id(base)}.json", "bench_cell")
    assert cell["params"] == base
    assert cell["build"]["commit"] and "-DGGML_RPC=ON" in cell["build"]["options"]
    assert cell["build"]["compiler"] and cell["build"]["cache_key"]
    assert cell["model"]["sha256"] == DEFAULT_CONFIG["models"]["gemma3-270m"]["sha256"]
    assert cell["host"]["cpu"] and cell["rule_version"] >= 1
    run = cell["llama_bench"]
    assert run["exit_status"] == 0 and run["peak_rss_mib"] > 100
    record = run["records"][0]
    assert record["build_commit"] == cell["build"]["commit"][:len(record["build_commit"])]
    assert record["n_threads"] == base["threads"] and record["n_batch"] == base["batch_size"]


def test_cells_record_where_the_layers_went_and_what_the_sampler_saw(run_dir: Path) -> None:
    """ngl all is the model's block count + 1 (Gemma 3 270M: 18 + 1), passed to llama-bench as a number; on a
    build without a GPU nothing is offloaded whatever ngl says; -nopo reaches llama-bench only where set."""
    cells = run_dir / "results/cells/cpu-rpc/gemma3-270m"
    everything = records.read(next(cells.glob("*_ngl-all_*.json")), "bench_cell")
    assert everything["offload"] == {"requested": "all", "n_gpu_layers": 19, "model_layers": 18,
                                     "offloaded_layers": 0, "cpu_layers": 19, "op_offload": False}
    run = everything["llama_bench"]
    assert "-ngl 19" in run["command_line"] and "-nopo" not in run["command_line"]
    assert all(r["n_gpu_layers"] == 19 for r in run["records"])
    baseline = records.read(next(cells.glob("*_ngl0_nopo1_*.json")), "bench_cell")
    assert baseline["params"]["no_op_offload"] == 1 and "-nopo 1" in baseline["llama_bench"]["command_line"]
    assert all(r["no_op_offload"] == 1 for r in baseline["llama_bench"]["records"])
    samples = run["samples"]
    assert samples["host"]["t"] and samples["gpu_error"].startswith("not sampled")  # a CPU build
    assert {phases.phase_of(m["label"]) for m in samples["marks"]} >= {"load", "prompt", "generation"}
    table = pd.read_csv(run_dir / "results/summary.csv")
    rows = table[table["cell"].str.contains("_ngl-all_")]
    assert set(rows["n_gpu_layers"]) == {"all"} and set(rows["offloaded_layers"]) == {0}
    assert rows["energy_j_per_token"].isna().all() and rows["peak_vram_mib"].isna().all()  # no GPU here


def test_nothing_reruns_after_a_complete_run(run_dir: Path) -> None:
    assert dry_run(run_dir, small_config()) == {}


def deeply_sorted(value: Any) -> Any:
    """The same values, every mapping's keys sorted, inside lists too: what a YAML tool may write."""
    if isinstance(value, dict):
        return {key: deeply_sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [deeply_sorted(item) for item in value]
    return value


def test_the_same_config_with_sorted_keys_reruns_nothing(run_dir: Path) -> None:
    """The RPC workers' dicts are written kind, build, device, threads: sorted, they must still be equal."""
    config = small_config()
    assert list(config["rpc"]["topologies"]["two-cpu"]["workers"][0]) != sorted(
        config["rpc"]["topologies"]["two-cpu"]["workers"][0])
    assert dry_run(run_dir, deeply_sorted(config)) == {}


def test_deleting_a_default_key_reruns_nothing(run_dir: Path) -> None:
    """A worker's threads: 1 is the schema's default: left out, it is filled in and the params are equal."""
    config = small_config()
    for worker in config["rpc"]["topologies"]["two-cpu"]["workers"]:
        del worker["threads"]
    assert dry_run(run_dir, config) == {}


def test_the_same_config_through_configfile_reruns_nothing(run_dir: Path) -> None:
    """config/config.yaml empty, the config given with --configfile (sorted, as another tool wrote it)."""
    elsewhere = run_dir.parent / f"{run_dir.name}-elsewhere.yaml"
    elsewhere.write_text(yaml.safe_dump(deeply_sorted(small_config())))
    (run_dir / "config" / "config.yaml").write_text("{}\n")
    try:
        out = snakemake(run_dir, "-n", "--cores", "8", "--configfile", str(elsewhere))
    finally:
        write_config(run_dir, small_config())
    assert "Nothing to be done" in out.stdout + out.stderr, out.stdout[-3000:]


def test_one_more_thread_value_runs_only_the_new_cell(run_dir: Path) -> None:
    config = small_config()
    config["benchmark"]["groups"]["threads"]["threads"].append(3)
    assert dry_run(run_dir, config) == {"bench_cell": 1, **AFTER_A_FIRST_ROUND}


QUALITY = Path("results/quality/cpu-rpc/gemma3-270m")
Q8, Q4 = "ngl99_fa-auto_ctk-q8-0_ctv-q8-0", "ngl99_fa-auto_ctk-q4-0_ctv-q4-0"


def test_quality_cells_measure_each_kv_setting_against_one_reference(run_dir: Path) -> None:
    """The kv_cache group's q8_0 K/V and quality.cells' q4_0 each get a llama-perplexity run against the one
    reference, whose logits are gone once no cell needs them; the table puts the grid's speed beside."""
    results = run_dir / "results"
    text = records.read(results / "quality/text.json", "quality_text")
    assert text["origin"]["glob"] == "docs/**/*.md" and text["origin"]["files"] > 10
    assert text["sha256"] == files.sha256_file(results / "quality/text.txt") and text["bytes"] > 100_000
    reference = records.read(run_dir / QUALITY / "reference.json", "quality_cell")
    assert reference["status"] == "ok" and len(reference["ppl_cumulative"]) == 3
    assert reference["logits_bytes"] > 3 * 63 * 262_144 * 2  # 2 bytes per vocabulary entry per scored token
    assert not (run_dir / QUALITY / "reference.kld").exists()  # deleted once every quality cell has read it
    found = {p.stem: records.read(p, "quality_cell") for p in (run_dir / QUALITY / "cells").glob("*.json")}
    q8, q4 = found[Q8], found[Q4]
    for cell in (q8, q4):
        assert cell["status"] == "ok" and "--kl-divergence" in cell["command"], cell["error"]
        assert cell["created"] > reference["created"] and cell["text_sha256"] == text["sha256"]
        assert cell["kld_ci_low"] <= cell["kld_mean"] <= cell["kld_ci_high"] and len(cell["chunk_kld"]) == 3
    assert "-ctk q8_0" in " ".join(q8["command"]) and "-ctv q4_0" in " ".join(q4["command"])
    assert q4["kld_mean"] > 3 * q8["kld_mean"] > 0 and q4["same_top"] < q8["same_top"]
    table = records.read_table(results / "quality.csv", "quality_row").set_index("cell")
    assert table.loc[Q8, "setting"] == "-ctk q8_0 -ctv q8_0" and not pd.isna(table.loc[Q8, "tg_ratio"])
    assert pd.isna(table.loc[Q4, "tg_ratio"])  # quality.cells has no benchmark cell: no speed beside
    assert table.loc["reference", "pareto"] and table.loc["reference", "kld_mean"] == 0
    rows = records.read_table(results / "findings.csv", "finding_row")
    said = rows[rows["question"] == "quality_cost"].set_index("cell")["statement"]
    assert f"KLD {q8['kld_mean']:.4g}" in said[Q8] and "-ctk q4_0 -ctv q4_0" in said[Q4]
    assert "Quality beside speed" in (results / "report.html").read_text()


def test_a_quality_budget_drops_a_candidate_unmeasured_with_its_reason(run_dir: Path) -> None:
    """tune.kv (q8_0 or q4_0 K) within max_kld 0.05: q4_0 (KLD ~0.16 here) never races."""
    results = run_dir / "results"
    [found] = records.read(results / "tune/kv.json", "tune")["results"]
    [over] = found["over_budget"]
    assert over["label"] == "cache_type_k=q4_0" and "exceeds the quality budget max_kld 0.05" in over["reason"]
    assert not [p for p in (results / "tune/kv/cells").rglob("*.json") if "ctk-q4-0" in p.name]
    assert found["winner"]["label"] != "cache_type_k=q4_0" and found["quality"]["budget"] == {"max_kld": 0.05}
    cost = found["quality"]["winner"]
    assert cost["kld_mean"] < 0.05
    if found["winner"]["label"] != "defaults":
        assert "within the quality budget (max_kld 0.05): KLD" in found["sentence"]


def test_one_more_quality_setting_measures_only_itself_making_the_deleted_logits_again(run_dir: Path,
                                                                                      tmp_path: Path) -> None:
    """The reference's logits are deleted after a run (266 MB at the defaults): a new cell makes them again by
    the reference's recorded command, checked against its record, and no other cell or reference reruns."""
    config = small_config()
    config["quality"]["cells"].append({"cache_type_k": "q5_1", "cache_type_v": "q5_1"})
    assert dry_run(run_dir, config) == {"quality_cell": 1, "quality_summary": 1, "findings": 1, "report_html": 1,
                                        "all": 1}
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, symlinks=True, ignore=shutil.ignore_patterns("logs"))
    (copy / "results/logs").mkdir()
    before = mtimes(copy / QUALITY)
    write_config(copy, config)
    snakemake(copy, "--cores", "2", "results/quality.csv")
    new = records.read(copy / QUALITY / "cells/ngl99_fa-auto_ctk-q5-1_ctv-q5-1.json", "quality_cell")
    assert new["status"] == "ok" and 0 < new["kld_mean"]
    assert not (copy / QUALITY / "reference.kld").exists()
    log = (copy / "results/logs/quality_cell/cpu-rpc/gemma3-270m/ngl99_fa-auto_ctk-q5-1_ctv-q5-1.log").read_text()
    ran = [line for line in log.splitlines() if line.startswith("$ ")]
    assert len(ran) == 2 and " -f " in ran[0] and "--kl-divergence " in f"{ran[1]} "  # the logits, then the cell
    assert {p: t for p, t in mtimes(copy / QUALITY).items() if p in before} == before


def test_changing_only_a_model_never_rebuilds(run_dir: Path) -> None:
    config = small_config()
    model = run_dir / "results/models/gemma3-270m/model.gguf"
    config["models"] = {"gemma3-270m": {"kind": "path", "path": str(model.resolve())}}
    jobs = dry_run(run_dir, config)
    assert "build" not in jobs and "source" not in jobs
    assert jobs["model"] == 1 and jobs["bench_cell"] == 8 and jobs["serve_cell"] == 2 and jobs["rpc_cell"] == 2


def test_changing_the_smoke_prompt_reruns_only_the_smoke_runs(run_dir: Path) -> None:
    config = small_config()
    config["smoke"]["prompt"] = "Paris is"
    assert dry_run(run_dir, config) == {"smoke": 1, "rpc_smoke": 1, "report_html": 1, "all": 1}


def test_serving_cells_measure_real_ttft_and_show_it_beside_the_estimate(run_dir: Path) -> None:
    cells = [records.read(p, "serve_cell") for p in (run_dir / "results/serving").rglob("*.json")]
    assert len(cells) == 2 and all(c["serving"]["status"] == "ok" for c in cells)
    for cell in cells:
        for req in cell["serving"]["requests"]:
            assert req["ttft_ms"] >= req["timings"]["prompt_ms"]  # the client's clock includes the prompt
            assert req["timings"]["cache_n"] == 0 and req["timings"]["prompt_n"] == 16
    serving = pd.read_csv(run_dir / "results/serving_summary.csv")
    assert sorted(serving["concurrency"]) == [1, 2] and (serving["status"] == "ok").all()
    assert serving["bench_ttft_estimate_ms"].notna().all() and serving["ttft_measured_over_estimate"].notna().all()
    assert serving["p90_is_max"].all()  # 3 requests are too few for a p90: the maximum stands in
    # every token of every measured request, exported with both clocks (timings_per_token)
    tokens = [json.loads(line) for line in (run_dir / "results/serving_tokens.jsonl").read_text().splitlines()]
    assert len(tokens) == sum(r["text_chunks"] for c in cells for r in c["serving"]["requests"])
    assert all(t["server_ms"] is not None and t["client_ms"] > 0 for t in tokens)
    report = (run_dir / "results/report.html").read_text()
    assert "Serving: latency as a user sees it" in report and "ttft_measured_over_estimate" in report
    # the two cells differ in concurrency alone, which is the work, not a setting: described, never ranked
    table = pd.read_csv(run_dir / "results/figures_table.csv")
    assert "aggregate t/s and TTFT p50 against concurrency" in set(table["metric"])
    assert "lowest measured TTFT p50 ms" not in set(table["metric"])


def test_rpc_cells_run_beside_their_local_partner_on_loopback_only(run_dir: Path) -> None:
    cells = [records.read(p, "rpc_cell") for p in (run_dir / "results/rpc").rglob("*.json")]
    assert sorted(c["devices"] for c in cells) == ["RPC0/RPC1", "none"]
    for cell in cells:
        assert cell["rpc"]["status"] == "ok", cell["rpc"]["error"]
        assert sorted(cell["rpc"]["rpc_devices"]) == ["RPC0", "RPC1"]
        for worker in cell["rpc"]["workers"]:
            assert worker["listening"] == [worker["address"]] and worker["address"].startswith("127.0.0.1:")
        assert "--rpc" in cell["rpc"]["llama_bench"]["command"]
        assert cell["rpc"]["llama_bench"]["records"][0]["devices"] == cell["devices"]
    table = pd.read_csv(run_dir / "results/rpc_summary.csv")
    assert table["tg_ratio_to_local"].notna().all() and (table["status"] == "ok").all()
    smoke = records.read(run_dir / "results/rpc_smoke/two-cpu/gemma3-270m.json", "rpc_smoke")
    assert smoke["smoke"]["status"] == "ok" and "--rpc" in smoke["smoke"]["command"]
    report = (run_dir / "results/report.html").read_text()
    assert "RPC: distributed runs" in report and "Generation through two-cpu" in report
    assert any(m.startswith("RPC vs local tg") for m in pd.read_csv(run_dir / "results/figures_table.csv")["metric"])


def test_a_failed_rpc_cell_is_listed_and_rerun_alone(failure_dir: Path) -> None:
    """The topology's worker is unreachable: its cell and its -dev none partner (same workers) both fail."""
    listed = (failure_dir / "results/failed_rpc_cells.txt").read_text().split()
    assert len(listed) == 2 and all("topology-gone" in path for path in listed)
    cell = records.read(failure_dir / listed[0], "rpc_cell")
    assert "did not accept connections" in cell["rpc"]["error"]
    assert "127.0.0.1:9" in (failure_dir / "results/report.html").read_text()
    out = snakemake(failure_dir, "-n", "--cores", "8", "--forcerun", listed[0])
    assert job_counts(out.stdout + out.stderr) == {"rpc_cell": 1, **AFTER_A_FIRST_ROUND}


def test_one_more_concurrency_level_runs_only_its_serving_cell(run_dir: Path) -> None:
    config = small_config()
    config["serving"]["scenarios"]["short"]["concurrency"] = [1, 3]
    assert dry_run(run_dir, config) == {"serve_cell": 1, **AFTER_A_CELL}


def test_unchanged_copy_of_the_code_reruns_nothing(run_dir: Path, tmp_path: Path) -> None:
    """The baseline of the code-edit tests below: a copy elsewhere is the same code."""
    snakefile = workflow_copy(tmp_path)
    edit(snakefile.parent / "workflow/scripts/llamabench/derive/tables.py", "# The figures table (results/",
         "# A comment edit reruns nothing. The figures table (results/")
    assert dry_run(run_dir, small_config(), snakefile) == {}


def test_editing_the_aggregation_code_reruns_summary_figures_and_report_only(run_dir: Path, tmp_path: Path) -> None:
    """The summary rule's own module: it and what reads its table rerun, no other summary (none imports it)."""
    snakefile = workflow_copy(tmp_path)
    edit(snakefile.parent / "workflow/scripts/llamabench/summary.py",
         '"samples_ts"] = json.dumps(rec.get("samples_ts"))', '"samples_ts"] = json.dumps(rec.get("samples_ts") or [])')
    assert dry_run(run_dir, small_config(), snakefile) == {"summary": 1, "stats": 1, "quality_summary": 1,
                                                          "findings": 1, "figures": 1, "report_html": 1, "all": 1}


def test_editing_the_table_vocabulary_reruns_every_aggregation_and_no_cell(run_dir: Path, tmp_path: Path) -> None:
    """The table vocabulary is the tables' alone: no measuring rule, no decision (the re-measure checkpoint reads
    records through core/metrics) and not the export of llama-bench's own records reaches it."""
    snakefile = workflow_copy(tmp_path)
    edit(snakefile.parent / "workflow/scripts/llamabench/derive/tables.py",
         "return float(present.mean()) if len(present) else None",
         "return float(present.mean()) if len(present) > 0 else None")
    assert dry_run(run_dir, small_config(), snakefile) == {k: n for k, n in AFTER_A_CELL.items()
                                                          if k not in ("remeasure", "export")}


def test_a_statement_in_the_build_module_reruns_nothing_and_asks_for_a_decision(run_dir: Path,
                                                                                tmp_path: Path) -> None:
    """No aggregation imports the build rule's module. The build's own version is declared (its results are
    cached by content): the edit reruns nothing, and the code-version check names the rule until someone
    decides."""
    snakefile = workflow_copy(tmp_path)
    edit(snakefile.parent / "workflow/scripts/llamabench/prepare/builds.py", "    files.remove(work)\n    return {",
         "    files.remove(work)\n    work = None\n    return {")
    assert dry_run(run_dir, small_config(), snakefile) == {}
    assert undecided(snakefile) == ["build", "perplexity_build", "probe_build"]


def test_a_statement_in_the_argument_builder_remeasures_benchmark_and_rpc_cells(run_dir: Path,
                                                                               tmp_path: Path) -> None:
    """llama-bench's arguments are built for benchmark, tuning and RPC cells alike: those kinds are measured again
    (and what reads them), nothing else; the check names exactly those three rules."""
    snakefile = workflow_copy(tmp_path)
    edit(snakefile.parent / "workflow/scripts/llamabench/measure/llama_bench.py",
         "    return axes.arguments(params, axes.BENCHMARK, axes.LLAMA_BENCH, help_text)",
         "    found = axes.arguments(params, axes.BENCHMARK, axes.LLAMA_BENCH, help_text)\n    return found")
    # a tuning study's candidates are llama-bench cells too: its round 1 is measured again, then decided again
    assert dry_run(run_dir, small_config(), snakefile) == {"bench_cell": 8, "rpc_cell": 2, "tune_cell": 4,
                                                           "tune_round": 2, "tune": 2, **AFTER_A_FIRST_ROUND}
    assert undecided(snakefile) == ["bench_cell", "bisect_cell", "history_cell", "rpc_cell", "tune_cell"]


def undecided(snakefile: Path) -> list[str]:
    """The rules whose code differs from what workflow/versions.yaml declares, in a workflow copy."""
    out = subprocess.run([sys.executable, "-m", "llamabench.core.code_version", "status"], capture_output=True,
                         text=True, cwd=snakefile.parent / "workflow" / "scripts", check=True)
    return sorted(line.split(":")[0] for line in out.stdout.splitlines())


def test_editing_the_report_template_reruns_only_the_report(run_dir: Path, tmp_path: Path) -> None:
    snakefile = workflow_copy(tmp_path)
    edit(snakefile.parent / "workflow/scripts/llamabench/report_html.html.j2", '<h2 id="smoke">Smoke runs</h2>',
         '<h2 id="smoke">Smoke runs (one generation per build and model)</h2>')
    assert dry_run(run_dir, small_config(), snakefile) == {"report_html": 1, "all": 1}


def test_a_log_message_in_the_cell_code_remeasures_nothing(run_dir: Path, tmp_path: Path) -> None:
    snakefile = workflow_copy(tmp_path)
    edit(snakefile.parent / "workflow/scripts/llamabench/bench_cell.py", 'log.info("cell %s", label)',
         'log.info("measuring cell %s", label)')
    assert dry_run(run_dir, small_config(), snakefile) == {}


def test_bumping_the_measurement_version_remeasures_every_cell_and_builds_nothing(run_dir: Path,
                                                                                   tmp_path: Path) -> None:
    snakefile = workflow_copy(tmp_path)
    versions = snakefile.parent / "workflow/versions.yaml"
    bumped = re.sub(r"^  bench_cell: \{version: (\d+)", lambda m: f"  bench_cell: {{version: {int(m[1]) + 1}",
                    versions.read_text(), flags=re.MULTILINE)
    versions.write_text(bumped)
    assert dry_run(run_dir, small_config(), snakefile) == {"bench_cell": 8, **AFTER_A_FIRST_ROUND}


def test_snakemake_report_is_built(run_dir: Path) -> None:
    snakemake(run_dir, "--report", "results/snakemake-report.html")
    assert (run_dir / "results/snakemake-report.html").stat().st_size > 10_000


def test_cuda_build_without_nvcc_stops_before_any_job_and_a_dry_run_says_why(tmp_path: Path) -> None:
    """Through Snakemake itself: the run stops before any job, naming nvcc in one line; a dry run still plans
    every job and warns with the same line (a user may build here and measure on a GPU host)."""
    config = small_config()
    config["builds"] = {"cuda": {"cmake_options": ["-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=90"]}}
    config["rpc"] = {"topologies": {}}
    write_config(tmp_path, config)
    # cmake, ninja and the compilers stay reachable; nvcc (e.g. /usr/local/bin, /usr/local/cuda/bin) does not.
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not shutil.which("nvcc", path=p))
    env = {k: v for k, v in os.environ.items() if k != "CUDACXX"} | {"PATH": path}
    sentence = "build 'cuda' asks for CUDA (-DGGML_CUDA=ON) but nvcc was not found"
    out = snakemake(tmp_path, "--cores", "2", check=False, env=env)
    assert out.returncode != 0 and sentence in out.stderr
    assert not (tmp_path / "results").exists()
    planned = snakemake(tmp_path, "-n", "--cores", "2", env=env)
    assert sentence in planned.stdout + planned.stderr and job_counts(planned.stdout + planned.stderr)["build"] == 1


def test_lint_and_format_are_clean() -> None:
    lint = snakemake(ROOT, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in lint.stdout + lint.stderr
    fmt = subprocess.run([sys.executable, "-m", "snakefmt", "--check", str(ROOT)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


LONG_BENCH = {"include": [{"n_prompt": 512, "n_gen": 512}], "repetitions": 20, "groups": {}}
LONG_SERVING = {"defaults": {"prompt_tokens": 16, "max_tokens": 64, "requests": 500, "ctx_size": 1024},
                "scenarios": {"long": {"concurrency": [1]}}}


def start_long_job(run_dir: Path, section: str, changes: dict[str, Any], pattern: str, marker: str,
                   ) -> tuple[subprocess.Popen, Path, int]:
    """Start Snakemake on one new cell that runs for minutes; return it, the cell file and the measuring pid."""
    config = small_config()
    config[section].update(changes)
    before, after = planned_cells(small_config()), planned_cells(config)
    [target] = [cell for cell in after - before if marker in cell]
    return start_job(run_dir, config, target, pattern)


def start_job(run_dir: Path, config: dict[str, Any], target: str, pattern: str, env: dict[str, str] | None = None,
              ) -> tuple[subprocess.Popen, Path, int]:
    """Start Snakemake on ``target`` with ``config``; return it, the target and the pid of the first process
    matching ``pattern`` (the measured program, a compiler) once it runs."""
    write_config(run_dir, config)
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(run_dir),
                             "--cores", "2", target], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env, preexec_fn=as_in_a_terminal)
    deadline = time.monotonic() + 300
    while not (pids := pids_of(pattern)):
        assert time.monotonic() < deadline and proc.poll() is None, "the job never started"
        time.sleep(0.2)
    time.sleep(2.0)
    return proc, run_dir / target, pids[0]


def planned_cells(config: dict[str, Any]) -> set[str]:
    """The result files of every benchmark, serving and RPC cell that ``config`` plans."""
    the_plan = plan.make(configuration.resolve(config))
    return {cell.path for kind in ("bench_cell", "serve_cell", "rpc_cell") for cell in the_plan.planned(kind)}


def pids_of(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def stop_snakemake(proc: subprocess.Popen, run_dir: Path, pattern: str) -> None:
    write_config(run_dir, small_config())
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for pid in pids_of(pattern):  # never leave a measurement behind, whatever the test found
        os.kill(pid, signal.SIGKILL)


LONG_RPC = {"cells": [{"n_prompt": 512, "n_gen": 512}]}
LONG_JOBS = {  # rule: config section, its changes, the measured programs' command lines, the cell's mark
    "bench_cell": ("benchmark", LONG_BENCH, "llama-bench.*-p 512 -n 512 -d 0 -r 20", "_p512_n512_"),
    "serve_cell": ("serving", LONG_SERVING, "llama-server -m results/models", "_mt64_"),
    "rpc_cell": ("rpc", LONG_RPC, "ggml-rpc-server -H 127.0.0.1|llama-bench --rpc",
                 "p512_n512_d0_r2_topology-two-cpu_devices-RPC0+RPC1"),
}


@pytest.mark.parametrize("rule", LONG_JOBS)
def test_cancelling_a_job_leaves_no_process_and_no_result(run_dir: Path, rule: str) -> None:
    """Stopping the job's own process (its step, the measured program's parent), as Snakemake's executor does.

    llama-bench and llama-server run in sessions of their own, so only the step's cleanup can stop them.
    """
    section, changes, pattern, marker = LONG_JOBS[rule]
    proc, target, pid = start_long_job(run_dir, section, changes, pattern, marker)
    try:
        step = int(Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[1])
        assert "rule.py" in Path(f"/proc/{step}/cmdline").read_text().replace("\0", " ")
        os.kill(step, signal.SIGTERM)
        proc.wait(timeout=120)
        time.sleep(0.5)
        assert not pids_of(pattern), f"{pattern} outlived its cancelled job"
        assert not target.exists()
    finally:
        stop_snakemake(proc, run_dir, pattern)


def job_step(pattern: str) -> psutil.Process:
    """The job's own Python process (workflow/scripts/rule.py) above a running process matching ``pattern``,
    however deep; a compiler may finish while it is looked at, so the next match is tried."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for pid in pids_of(pattern):
            try:
                found = psutil.Process(pid)
                while found is not None and "rule.py" not in " ".join(found.cmdline()):
                    found = found.parent()
                if found is not None:
                    return found
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no job step above a process matching {pattern!r}")


def killed_jobs() -> dict[str, tuple[dict[str, Any], str, str]]:
    """rule: (the small config changed so that the job runs for minutes, its target, its children's pattern)."""
    long_smoke = {**small_config()["smoke"], "n_predict": 4096}
    jobs = {}
    for rule, (section, changes, pattern, marker) in LONG_JOBS.items():
        config = small_config()
        config[section].update(changes)
        [target] = [cell for cell in planned_cells(config) - planned_cells(small_config()) if marker in cell]
        jobs[rule] = (config, target, pattern)
    jobs["smoke"] = ({**small_config(), "smoke": long_smoke}, "results/smoke/cpu-rpc/gemma3-270m.json",
                     "llama-completion -m")
    jobs["rpc_smoke"] = ({**small_config(), "smoke": long_smoke}, "results/rpc_smoke/two-cpu/gemma3-270m.json",
                         "llama-completion -m .* --rpc")
    # A build of its own cache key (an option CMake ignores) in a cache of its own: it compiles.
    config = small_config()
    config["builds"]["killed"] = {"cmake_options": ["-DGGML_RPC=ON", "-DLLAMABENCH_KILLED_BUILD=1"]}
    jobs["build"] = (config, "results/builds/killed/manifest.json", "cc1plus|ninja -C")
    return jobs


@pytest.mark.parametrize("rule", ["bench_cell", "serve_cell", "rpc_cell", "smoke", "rpc_smoke", "build"])
def test_sigkill_of_a_jobs_process_stops_every_child_and_frees_the_machine_only_then(run_dir: Path, rule: str,
                                                                                   tmp_path: Path) -> None:
    """What the OOM killer or kill -9 does to the job's Python process: no cleanup code runs, and still within
    2 s no process it started is alive and nothing listens on their ports; and the machine's measurement lock
    is not free while any of them still runs (they hold its descriptor)."""
    config, target, pattern = killed_jobs()[rule]
    env = {**os.environ, "LLAMABENCH_CACHE": str(tmp_path / "cache")} if rule == "build" else None
    proc, target_path, _ = start_job(run_dir, config, target, pattern, env)
    try:
        step = job_step(pattern)
        children = step.children(recursive=True)
        ports = {c.laddr.port for child in children for c in psutil.Process(child.pid).net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN} if rule in ("serve_cell", "rpc_cell", "rpc_smoke") else set()
        assert children and (ports or rule not in ("serve_cell", "rpc_cell", "rpc_smoke"))
        step.kill()
        killed = time.monotonic()
        with open(machine_lock.lock_path(), "a") as lock:
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    assert time.monotonic() - killed < 30, "the lock stayed held"
                    time.sleep(0.01)
            alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
            fcntl.flock(lock, fcntl.LOCK_UN)
        assert not alive, f"the lock was free while {alive} still ran"
        assert time.monotonic() - killed < 2.0
        listening = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
        assert not ports & listening
        assert not target_path.exists()
    finally:
        stop_snakemake(proc, run_dir, pattern)


@pytest.mark.parametrize("rule", LONG_JOBS)
def test_ctrl_c_during_a_job_leaves_no_process_and_no_result(run_dir: Path, rule: str) -> None:
    """Ctrl-C in a terminal reaches Snakemake's foreground process group, not the measured program's session."""
    section, changes, pattern, marker = LONG_JOBS[rule]
    proc, target, _ = start_long_job(run_dir, section, changes, pattern, marker)
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
        time.sleep(0.5)
        assert not pids_of(pattern), f"{pattern} still running"
        assert not target.exists()
    finally:
        stop_snakemake(proc, run_dir, pattern)


CHROMIUM = (Path("/usr/lib/chromium/chromium"), Path("/usr/bin/chromium"))


def chromium() -> Path:
    """Debian's chromium, installed with apt-get where it is missing; the test is skipped, saying why, where it
    cannot be."""
    if found := next((p for p in CHROMIUM if p.exists()), None):
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed, and installing it needs root and apt-get")
    out = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                         env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, capture_output=True, text=True,
                         timeout=900)
    if out.returncode != 0 or not (found := next((p for p in CHROMIUM if p.exists()), None)):
        pytest.skip(f"apt-get install chromium failed: {out.stderr.strip()[-300:]}")
    return found


def test_the_report_in_a_real_browser(run_dir: Path) -> None:
    """At 1280x800 in Chromium: nothing fails to load; the command line and the answers start on the first screen,
    before any scrolling; every figure has pixels and none is drawn empty (the report leaves those out); each
    evidence link leads to a section of the page; a table's setting shows its cell id on hover."""
    from playwright.sync_api import sync_playwright

    exe, failed = chromium(), []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(exe), args=["--no-sandbox"] if os.geteuid() == 0 else [])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("requestfailed", lambda request: failed.append(request.url[:80]))
            page.on("response", lambda response: response.status >= 400 and failed.append(response.url[:80]))
            page.goto((run_dir / "results/report.html").as_uri(), wait_until="load")
            images = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth, "
                                                      "e.naturalHeight, e.clientWidth])")
            assert len(images) >= 3 and all(done and width > 0 and height > 0 and shown <= 880
                                            for _, done, width, height, shown in images), images
            assert not failed, failed
            html = (run_dir / "results/report.html").read_text()
            empty = [png for png in (run_dir / "results/figures").glob("*.png") if not plots.drawn(png)]
            assert not any(base64.b64encode(png.read_bytes()).decode() in html for png in empty), empty
            assert "was not swept" not in html
            command, answers = page.locator("pre.command").first, page.locator("ul.answers li")
            assert answers.count() >= 2
            for element in (command, answers.first):
                box = element.bounding_box()
                assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 800, box
            assert command.bounding_box()["y"] < answers.first.bounding_box()["y"]
            for href in page.eval_on_selector_all("ul.answers a", "els => els.map(e => e.getAttribute('href'))"):
                assert page.locator(href).count() == 1, href
            assert page.locator("span.setting[title]").count() > 0
        finally:
            browser.close()

"""The whole workflow for real, in a scratch directory: run, rerun nothing, rerun only what changed.

One real run (real build from the shared cache, real model, real llama-bench)
with a small matrix that includes a cell bound to fail, then dry runs that
check Snakemake schedules exactly what a config change calls for.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import DEFAULT_CONFIG, ROOT, snakemake, write_config
from llamabench import files, matrix

BAD_CELL = {"cache_type_k": "nonsense"}


def small_config() -> dict[str, Any]:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["builds"] = {"cpu-rpc": DEFAULT_CONFIG["builds"]["cpu-rpc"]}
    config["smoke"]["n_predict"] = 8
    config["benchmark"] = {
        "builds": [],
        "models": [],
        "repetitions": 2,
        "defaults": {**DEFAULT_CONFIG["benchmark"]["defaults"], "n_prompt": 32, "n_gen": 8},
        "groups": {"threads": {"threads": [1, 2]}, "batch": {"batch_size": [32, 2048]}},
        "include": [BAD_CELL],
    }
    return config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("workflow")
    write_config(workdir, small_config())
    snakemake(workdir, "--cores", "8")
    return workdir


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: {rule: count}."""
    table = output[output.index("Job stats:"):]
    rows = re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.MULTILINE)
    return {rule: int(n) for rule, n in rows if rule != "total"}


def dry_run(workdir: Path, config: dict[str, Any]) -> dict[str, int]:
    write_config(workdir, config)
    try:
        out = snakemake(workdir, "-n", "--cores", "8")
    finally:
        write_config(workdir, small_config())
    if "Nothing to be done" in out.stdout + out.stderr:
        return {}
    return job_counts(out.stdout + out.stderr)


def test_run_produces_every_output(run_dir: Path) -> None:
    results = run_dir / "results"
    for name in ["report.html", "summary.csv", "figures_table.csv", "figures_table.md", "failed_cells.txt",
                 "figures/threads.png", "figures/threads.svg", "figures/batch.png", "figures/gpu_layers.svg",
                 "source/manifest.json", "builds/cpu-rpc/manifest.json", "models/gemma3-270m/manifest.json",
                 "smoke/cpu-rpc/gemma3-270m.json"]:
        assert (results / name).is_file(), name
    smoke = files.read_json(results / "smoke/cpu-rpc/gemma3-270m.json")
    assert smoke["text"].startswith(DEFAULT_CONFIG["smoke"]["prompt"])
    assert smoke["tokens_per_second"]["generation"] > 0


def test_failed_cell_is_reported_and_the_others_are_all_there(run_dir: Path) -> None:
    results = run_dir / "results"
    summary = pd.read_csv(results / "summary.csv")
    failed = summary[summary["status"] == "failed"]
    assert list(failed["cache_type_k"]) == ["nonsense"]
    ok = summary[summary["status"] == "ok"]
    assert ok["cell"].nunique() == 3  # the defaults cell, t1 and b32; the 4th cell is the failing one
    assert sorted(ok["test"].unique()) == ["pp32", "tg8"]
    report = (results / "report.html").read_text()
    assert "ctk-nonsense" in report and "invalid parameter for argument: -ctk" in report
    listed = (results / "failed_cells.txt").read_text().split()
    assert len(listed) == 1 and "ctk-nonsense" in listed[0]
    log = run_dir / "results/logs/cells/cpu-rpc/gemma3-270m" / (Path(listed[0]).stem + ".log")
    assert "invalid parameter" in log.read_text()


def test_cells_never_overlap_even_with_8_cores(run_dir: Path) -> None:
    spans = sorted(
        (cell["llama_bench"]["start_epoch"], cell["llama_bench"]["end_epoch"])
        for cell in map(files.read_json, (run_dir / "results/cells").rglob("*.json"))
    )
    assert len(spans) == 4
    for (_, end), (next_start, _) in zip(spans, spans[1:]):
        assert end <= next_start


def test_cell_records_what_explains_its_numbers(run_dir: Path) -> None:
    base = matrix.baseline({**small_config()["benchmark"], "repetitions": 2})
    cell = files.read_json(run_dir / "results/cells/cpu-rpc/gemma3-270m" / f"{matrix.cell_id(base)}.json")
    assert cell["params"] == base
    assert cell["build_info"]["commit"] and "-DGGML_RPC=ON" in cell["build_info"]["options"]
    assert cell["build_info"]["compiler"]
    assert cell["model_info"]["sha256"] == DEFAULT_CONFIG["models"]["gemma3-270m"]["sha256"]
    assert cell["host"]["cpu"]
    run = cell["llama_bench"]
    assert run["exit_status"] == 0 and run["peak_rss_mib"] > 100
    record = run["records"][0]
    assert record["build_commit"] == cell["build_info"]["commit"]
    assert record["n_threads"] == base["threads"] and record["n_batch"] == base["batch_size"]


def test_nothing_reruns_after_a_complete_run(run_dir: Path) -> None:
    assert dry_run(run_dir, small_config()) == {}


def test_one_more_thread_value_runs_only_the_new_cell(run_dir: Path) -> None:
    config = small_config()
    config["benchmark"]["groups"]["threads"]["threads"].append(3)
    assert dry_run(run_dir, config) == {"bench_cell": 1, "summarize": 1, "figures": 1, "report_html": 1, "all": 1}


def test_changing_only_a_model_never_rebuilds(run_dir: Path) -> None:
    config = small_config()
    model = run_dir / "results/models/gemma3-270m/model.gguf"
    config["models"]["gemma3-270m"] = {"kind": "path", "path": str(model.resolve())}
    jobs = dry_run(run_dir, config)
    assert "build" not in jobs and "fetch_source" not in jobs
    assert jobs["fetch_model"] == 1 and jobs["bench_cell"] == 4


def test_changing_the_smoke_prompt_reruns_only_the_smoke_run(run_dir: Path) -> None:
    config = small_config()
    config["smoke"]["prompt"] = "Paris is"
    assert dry_run(run_dir, config) == {"smoke": 1, "report_html": 1, "all": 1}


def test_cuda_build_without_nvcc_stops_with_one_sentence(tmp_path: Path) -> None:
    """Through Snakemake itself: the build job fails and the console says why in one line."""
    config = small_config()
    config["builds"] = {"cuda": {"cmake_options": ["-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=90"]}}
    write_config(tmp_path, config)
    # cmake, ninja and the compilers stay reachable; nvcc (e.g. /usr/local/bin, /usr/local/cuda/bin) does not.
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not shutil.which("nvcc", path=p))
    env = {k: v for k, v in os.environ.items() if k != "CUDACXX"} | {"PATH": path}
    out = snakemake(tmp_path, "--cores", "2", "results/builds/cuda/manifest.json", check=False, env=env)
    assert out.returncode != 0
    assert "llamabench: build 'cuda' asks for CUDA (-DGGML_CUDA=ON) but nvcc was not found" in out.stderr
    assert not (tmp_path / "results/builds/cuda/manifest.json").exists()
    assert "nvcc was not found" in (tmp_path / "results/logs/build/cuda.log").read_text()


def test_lint_and_format_are_clean() -> None:
    lint = snakemake(ROOT, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in lint.stdout + lint.stderr
    fmt = subprocess.run([sys.executable, "-m", "snakefmt", "--check", str(ROOT)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_ctrl_c_during_a_cell_leaves_no_process_and_no_result(run_dir: Path) -> None:
    """Ctrl-C reaches the whole foreground process group: llama-bench must be gone, the cell file absent."""
    config = small_config()
    config["benchmark"]["include"] = [{"n_prompt": 512, "n_gen": 512}]  # a cell that runs for a while
    config["benchmark"]["repetitions"] = 20
    write_config(run_dir, config)
    cell = matrix.cell_id(matrix.normalize({**config["benchmark"]["defaults"], "n_prompt": 512, "n_gen": 512,
                                            "repetitions": 20}))
    target = f"results/cells/cpu-rpc/gemma3-270m/{cell}.json"
    log = run_dir / "results/logs/cells/cpu-rpc/gemma3-270m" / f"{cell}.log"
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(run_dir),
                             "--cores", "2", target], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (log.exists() and "llama-bench" in log.read_text()):
            assert time.monotonic() < deadline and proc.poll() is None, "the cell never started"
            time.sleep(0.2)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        write_config(run_dir, small_config())
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(0.5)
    running = subprocess.run(["pgrep", "-f", f"llama-bench.*-p 512 -n 512 -d 0 -r 20"], capture_output=True, text=True)
    assert running.stdout == "", f"llama-bench still running: {running.stdout}"
    assert not (run_dir / target).exists()

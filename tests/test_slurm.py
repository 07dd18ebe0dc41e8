"""The workflow on a real SLURM, through Snakemake's official executor plugin and the project's profile:
two platforms (two partitions of a single-node test cluster), every build and cell a SLURM job on its own
node (--exclusive), results of the same shape as a local run, both platforms side by side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import slurm_cluster
from conftest import RPC_OPTIONS, ROOT, snakemake, write_config
from llamabench.core import records

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake


def tiny(platforms: dict[str, Any]) -> dict[str, Any]:
    return {
        "platforms": platforms,
        "builds": {"cpu-rpc": {"cmake_options": RPC_OPTIONS}},
        "smoke": {"n_predict": 4},
        "benchmark": {"builds": [], "repetitions": 1, "rounds": 1, "groups": {},
                      "exclude": [], "defaults": {"n_prompt": 16, "n_gen": 4}},
        "serving": {"builds": [], "scenarios": {}},
        "rpc": {"topologies": {}},
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if why := slurm_cluster.unavailable():
        pytest.skip(why)
    with slurm_cluster.running(tmp_path_factory.mktemp("slurm")) as partitions:
        yield partitions


@pytest.fixture(scope="module")
def cluster_run(cluster: dict[str, str], rpc_build: dict[str, Any],
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("on-slurm")
    platforms = {name: {"kind": "slurm", "partition": partition, "cpus": 2, "runtime": 30}
                 for name, partition in cluster.items()}
    write_config(workdir, tiny(platforms))
    # A hard limit: an executor that loses its jobs polls forever and ignores SIGTERM.
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--workflow-profile", str(ROOT / "profiles" / "slurm"), "--slurm-init-seconds-before-status-checks", "1",
           "--seconds-between-status-checks", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-6000:]
    return workdir


def job_records(workdir: Path) -> list[dict[str, Any]]:
    found = [records.read(p, "build") for p in (workdir / "results/builds").glob("*/manifest.json")]
    found += [records.read(p, "smoke") for p in (workdir / "results/smoke").rglob("*.json")]
    found += [records.read(p, "bench_cell") for p in (workdir / "results/cells").rglob("*.json")]
    return found


def build_of(record: dict[str, Any]) -> str:
    if record["kind"] == "build":
        return record["name"]
    return record["build"] if isinstance(record["build"], str) else record["build"]["name"]


def test_every_build_and_cell_ran_as_an_exclusive_slurm_job_on_its_partition(cluster_run: Path) -> None:
    jobs = job_records(cluster_run)
    assert len(jobs) == 2 + 2 + 2  # per platform: a build, a smoke run, a cell
    ids = {record["host"]["slurm_job_id"] for record in jobs}
    assert None not in ids and len(ids) == len(jobs)
    for record in jobs:
        shown = subprocess.run(["scontrol", "show", "job", record["host"]["slurm_job_id"]], capture_output=True,
                               text=True).stdout
        platform = build_of(record).rpartition("+")[2]
        assert "OverSubscribe=NO" in shown, shown  # --exclusive: the node is the job's
        assert f"Partition=cpu-{platform}" in shown


def test_the_platforms_share_one_build_and_stand_side_by_side(cluster_run: Path, tmp_path: Path) -> None:
    builds = [records.read(p, "build") for p in (cluster_run / "results/builds").glob("*/manifest.json")]
    assert sorted(b["name"] for b in builds) == ["cpu-rpc+a", "cpu-rpc+b"]
    assert len({b["cache_key"] for b in builds}) == 1  # identical nodes: one cached build
    summary = pd.read_csv(cluster_run / "results/summary.csv")
    assert set(summary["status"]) == {"ok"} and set(summary["build"]) == {"cpu-rpc+a", "cpu-rpc+b"}
    # The same config run here: the same cells and tests per build, the same columns.
    write_config(tmp_path, tiny({"local": {"kind": "local"}}))
    snakemake(tmp_path, "--cores", "2")
    local = pd.read_csv(tmp_path / "results/summary.csv")
    assert list(local.columns) == list(summary.columns)
    for platform in ("a", "b"):
        mine = summary[summary["build"] == f"cpu-rpc+{platform}"]
        assert sorted(zip(mine["cell"], mine["test"])) == sorted(zip(local["cell"], local["test"]))
    report = (cluster_run / "results/report.html").read_text()
    assert "cpu-rpc+a" in report and "cpu-rpc+b" in report

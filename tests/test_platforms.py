"""Platforms: a cluster config becomes one build instance per platform, every reference follows, and each
job's scheduler resources come from its platform (the real SLURM run is tests/test_slurm.py)."""

from __future__ import annotations

import copy

import pytest
from snakemake.utils import validate

from conftest import DEFAULT_CONFIG, ROOT
from llamabench import platforms

SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
TWO = {"a100": {"kind": "slurm", "partition": "gpu-a100", "cpus": 32, "gpus": 1, "account": "lab"},
       "epyc": {"kind": "slurm", "partition": "cpu", "cpus": 64, "exclusive": False}}


def cluster_config() -> dict:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["platforms"] = copy.deepcopy(TWO)
    config["models"]["synth"] = {"kind": "synthetic", "shape": "qwen3-0.6b", "type": "Q8_0", "build": "cpu"}
    config["comparisons"] = {"rpc": {"baseline": "cpu", "builds": ["cpu-rpc"]},
                             "across": {"baseline": "cpu+a100", "builds": ["cpu+epyc"]}}
    validate(config, SCHEMA)
    return config


def test_a_local_config_is_left_alone() -> None:
    config = copy.deepcopy(DEFAULT_CONFIG)
    validate(config, SCHEMA)
    assert platforms.expand(config) is config
    assert platforms.resources(config, platforms.platform_of(config, "cpu"), True) == {}


def test_every_build_becomes_one_instance_per_platform_and_references_follow() -> None:
    out = platforms.expand(cluster_config())
    assert sorted(out["builds"]) == ["cpu+a100", "cpu+epyc", "cpu-rpc+a100", "cpu-rpc+epyc"]
    assert out["builds"]["cpu+a100"]["platform"] == "a100"
    assert out["benchmark"]["builds"] == ["cpu+a100", "cpu+epyc"]
    assert out["serving"]["builds"] == out["benchmark"]["builds"]
    assert sorted(out["rpc"]["topologies"]) == ["two-cpu+a100", "two-cpu+epyc"]
    topology = out["rpc"]["topologies"]["two-cpu+epyc"]
    assert topology["client"] == "cpu-rpc+epyc" and {w["build"] for w in topology["workers"]} == {"cpu-rpc+epyc"}
    assert out["models"]["synth"]["build"] == "cpu+a100"
    assert out["comparisons"]["rpc+a100"] == {"baseline": "cpu+a100", "builds": ["cpu-rpc+a100"]}
    assert out["comparisons"]["across"] == {"baseline": "cpu+a100", "builds": ["cpu+epyc"]}


def test_each_job_asks_its_platform_for_the_node() -> None:
    out = platforms.expand(cluster_config())
    gpu = platforms.resources(out, platforms.platform_of(out, "cpu+a100"), exclusive=True)
    assert gpu == {"slurm_partition": "gpu-a100", "cpus_per_task": 32, "runtime": 60, "slurm_account": "lab",
                   "gpu": 1, "slurm_extra": "--exclusive"}
    assert platforms.resources(out, platforms.platform_of(out, "cpu+epyc"), exclusive=True)["slurm_extra"] == ""
    # a job that names no build: the first platform
    assert platforms.resources(out, platforms.platform_of(out, None), exclusive=True)["slurm_partition"] == "gpu-a100"


def test_local_beside_a_cluster_is_refused_naming_why() -> None:
    config = cluster_config()
    config["platforms"]["local"] = {"kind": "local"}
    with pytest.raises(ValueError, match="one executor"):
        platforms.check(config)

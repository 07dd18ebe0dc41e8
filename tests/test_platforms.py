"""Platforms: a cluster config becomes one build instance per platform, every reference follows, and each
job's scheduler resources come from its platform (the real SLURM run is tests/test_slurm.py)."""

from __future__ import annotations

import copy

import pytest

from conftest import DEFAULT_CONFIG
from llamabench.core import configuration, plan, platforms
TWO = {"a100": {"kind": "slurm", "partition": "gpu-a100", "cpus": 32, "gpus": 1, "account": "lab"},
       "epyc": {"kind": "slurm", "partition": "cpu", "cpus": 64, "exclusive": False}}


def cluster_config() -> dict:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["platforms"] = copy.deepcopy(TWO)
    config["models"]["synth"] = {"kind": "synthetic", "shape": "qwen3-0.6b", "type": "Q8_0", "build": "cpu"}
    config["comparisons"] = {"rpc": {"baseline": "cpu", "builds": ["cpu-rpc"]},
                             "across": {"baseline": "cpu+a100", "builds": ["cpu+epyc"]}}
    return configuration.resolve(config)


def test_a_local_config_is_left_alone() -> None:
    config = configuration.resolve(DEFAULT_CONFIG)
    assert platforms.expand(config) is config
    the_plan = plan.make(config)
    assert platforms.resources(the_plan.platforms[the_plan.platform_of("cpu")], True) == {}


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
    the_plan = plan.make(cluster_config())

    def resources(build: str | None) -> dict:
        return platforms.resources(the_plan.platforms[the_plan.platform_of(build)], exclusive=True)

    assert resources("cpu+a100") == {"slurm_partition": "gpu-a100", "cpus_per_task": 32, "runtime": 60,
                                     "slurm_account": "lab", "gpu": 1, "slurm_extra": "--exclusive"}
    assert resources("cpu+epyc")["slurm_extra"] == ""
    assert resources(None)["slurm_partition"] == "gpu-a100"  # a job that names no build: the first platform


def test_local_beside_a_cluster_is_refused_naming_why() -> None:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["platforms"] = {**copy.deepcopy(TWO), "local": {"kind": "local"}}
    with pytest.raises(configuration.ConfigError, match="one executor"):
        configuration.resolve(config)

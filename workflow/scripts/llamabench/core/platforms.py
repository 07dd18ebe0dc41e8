"""Where builds and cells run: this machine, or partitions of a cluster (SLURM, through Snakemake's executor).

On a cluster every build is built on, and measured on, each platform it is
configured for: the config's builds become one instance per platform, named
``<build>+<platform>``, and every reference to a build (benchmark, serving, RPC
topologies, comparisons, a synthetic model's quantizer) follows. The rest of the
workflow keys everything by build name, so cells, summaries, figures and the
report show platforms side by side without knowing about them. Instances of
identical nodes share one cached build: the cache key is what the node is (ISA
flags, compiler, CUDA architectures), never the platform's name.

A platform's scheduler resources become each job's Snakemake resources
(``slurm_partition``, ``slurm_account``, ``constraint``, ``cpus_per_task``,
``mem_mb``, ``runtime``, ``gpu``, ``slurm_extra``); measuring jobs and builds ask
for the whole node (``--exclusive``), so a measurement never shares its
hardware while many nodes measure at once.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

SEPARATOR = "+"


def clustered(config: dict[str, Any]) -> bool:
    return any(p["kind"] != "local" for p in config["platforms"].values())


def check(config: dict[str, Any]) -> None:
    """One executor runs one invocation: a local platform cannot sit beside cluster ones."""
    kinds = {p["kind"] for p in config["platforms"].values()}
    if "local" in kinds and len(kinds) > 1:
        raise ValueError("platforms mixes local and slurm: Snakemake submits every job of one run to one executor, "
                         "so run the local platform and the cluster ones as two runs (two -d directories)")


def instance(build: str, platform: str) -> str:
    return f"{build}{SEPARATOR}{platform}"


def expand(config: dict[str, Any]) -> dict[str, Any]:
    """The config with one build instance per (build, platform); unchanged when everything is local."""
    if not clustered(config):
        return config
    names = list(config["platforms"])
    out = copy.deepcopy(config)

    def every(builds: list[str]) -> list[str]:
        return [b if SEPARATOR in b else instance(b, p) for b in builds for p in ([None] if SEPARATOR in b else names)]

    out["builds"] = {instance(b, p): {**cfg, "platform": p} for b, cfg in config["builds"].items() for p in names}
    bench = out["benchmark"]
    bench["builds"] = every(bench["builds"])
    for group in bench["groups"].values():
        if "builds" in group:
            group["builds"] = every(group["builds"])
    out["serving"]["builds"] = every(out["serving"]["builds"])
    for model in out["models"].values():
        if "build" in model:
            model["build"] = instance(model["build"], names[0])
    out["rpc"]["topologies"] = {
        instance(name, p): {**topology, "client": instance(topology["client"], p),
                            "workers": [{**w, "build": instance(w["build"], p)} if "build" in w else w
                                        for w in topology["workers"]]}
        for name, topology in config["rpc"]["topologies"].items() for p in names}
    comparisons = {}
    for name, spec in config["comparisons"].items():
        named = [spec.get("baseline", ""), *spec["builds"]]
        if any(SEPARATOR in b for b in named):  # names instances itself: one comparison, e.g. across platforms
            comparisons[name] = spec
            continue
        for p in names:
            comparisons[instance(name, p)] = {
                **({"baseline": instance(spec["baseline"], p)} if "baseline" in spec else {}),
                "builds": [instance(b, p) for b in spec["builds"]]}
    out["comparisons"] = comparisons
    return out


def resources(platform: Mapping[str, Any], exclusive: bool) -> dict[str, Any]:
    """The Snakemake resources of a job on ``platform`` ({} on a local one)."""
    if platform["kind"] == "local":
        return {}
    found = {"slurm_partition": platform["partition"], "cpus_per_task": platform["cpus"],
             "runtime": platform["runtime"]}
    for key, resource in (("account", "slurm_account"), ("constraint", "constraint"), ("mem_mb", "mem_mb"),
                          ("gpus", "gpu")):
        if key in platform:
            found[resource] = platform[key]
    extra = [platform.get("extra", "")] + (["--exclusive"] if exclusive and platform["exclusive"] else [])
    found["slurm_extra"] = " ".join(part for part in extra if part)
    return found

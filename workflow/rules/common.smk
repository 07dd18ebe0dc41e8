import os
import sys
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

# The logic lives in the package workflow/scripts/llamabench: scripts find it beside
# themselves (Snakemake puts a script's directory on sys.path), the Snakefile here.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))

from llamabench import matrix, source  # noqa: E402

validate(config, "../schemas/config.schema.yaml")

BUILDS = list(config["builds"])
MODELS = list(config["models"])
BENCH = config["benchmark"]


def check_names(where, names, known, section):
    """A benchmark that names an undefined build or model is a config error, not an empty matrix."""
    for name in names:
        if name not in known:
            raise ValueError(f"{where} names '{name}', which is not under {section}:")


check_names("benchmark.builds", BENCH["builds"], BUILDS, "builds")
check_names("benchmark.models", BENCH["models"], MODELS, "models")
for _group, _axes in BENCH["groups"].items():
    check_names(
        f"benchmark.groups.{_group}.builds", _axes.get("builds", []), BUILDS, "builds"
    )

if workflow.global_resources.get("bench_slot") != 1:
    logger.warning(
        "bench_slot is not limited to 1 (profiles/default not loaded?): "
        "benchmark cells may run at the same time and disturb each other."
    )

CELLS = matrix.expand(BENCH, BUILDS, MODELS)


def canonical(value):
    """Params with sorted keys: Snakemake compares params by repr, so key order must not matter."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    return value


def source_tree_state():
    """A path checkout changes without its config changing: its fingerprint makes fetch_source rerun."""
    if config["source"]["kind"] != "path":
        return None
    return source.path_state(Path(config["source"]["path"]).expanduser())


def model_file_state(wildcards):
    """Likewise for a path model: size and mtime of the user's file."""
    cfg = config["models"][wildcards.model]
    path = os.path.expanduser(cfg.get("path", ""))
    if cfg["kind"] != "path" or not os.path.exists(path):
        return None
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def cell_files():
    return [f"results/cells/{b}/{m}/{c}.json" for (b, m, c) in CELLS]


def cell_params(wildcards):
    return CELLS[(wildcards.build, wildcards.model, wildcards.cell)]


def cell_threads(wildcards):
    return cell_params(wildcards)["threads"]


wildcard_constraints:
    build="[A-Za-z0-9_.-]+",
    model="[A-Za-z0-9_.-]+",
    cell="[A-Za-z0-9_.+-]+",

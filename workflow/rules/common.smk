import copy
import os
import sys
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

# The logic lives in the package workflow/scripts/llamabench: the one script
# (workflow/scripts/rule.py) finds it beside itself, the Snakefile here.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))

from llamabench import code_version, matrix, source  # noqa: E402

GIVEN = copy.deepcopy(
    config
)  # what the user wrote, before the schema fills in defaults
validate(config, "../schemas/config.schema.yaml")

BUILDS = list(config["builds"])
MODELS = list(config["models"])
BENCH = config["benchmark"]
RULE_SCRIPT = "../scripts/rule.py"


def was_given(path):
    """Whether the user's config sets the dotted key ``path`` (else the schema's default applies)."""
    node = GIVEN
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def check_names(where, names, known, section):
    """A benchmark that names an undefined build or model is a config error, not an empty matrix."""
    for name in names:
        if name not in known:
            default = "" if was_given(where) else " (its default)"
            raise ValueError(
                f"{where} names '{name}'{default}, which is not under {section}: "
                f"name ones that exist, or [] for all of them"
            )


check_names("benchmark.builds", BENCH["builds"], BUILDS, "builds")
check_names("benchmark.models", BENCH["models"], MODELS, "models")
check_names("serving.builds", config["serving"]["builds"], BUILDS, "builds")
check_names("serving.models", config["serving"]["models"], MODELS, "models")
for _group, _axes in BENCH["groups"].items():
    check_names(
        f"benchmark.groups.{_group}.builds", _axes.get("builds", []), BUILDS, "builds"
    )

if workflow.global_resources.get("bench_slot") != 1:
    logger.warning(
        "bench_slot is not limited to 1 (profiles/default not loaded?): "
        "benchmark cells may run at the same time and disturb each other."
    )

CELLS, SERVE_CELLS = matrix.all_cells(config)


def canonical(value):
    """Params with sorted keys: Snakemake compares params by repr, so key order must not matter."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    return value


def get_rule_version(rule):
    """The param that reruns a rule when its code changes (llamabench/code_version.py)."""
    return code_version.rule_version(rule)


def get_source_tree_state():
    """A path checkout changes without its config changing: its fingerprint reruns the source rule."""
    if config["source"]["kind"] != "path":
        return None
    return source.path_state(Path(config["source"]["path"]).expanduser())


def get_model_file_state(wildcards):
    """Likewise for a path model: size and mtime of the user's file."""
    cfg = config["models"][wildcards.model]
    path = os.path.expanduser(cfg.get("path", ""))
    if cfg["kind"] != "path" or not os.path.exists(path):
        return None
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def get_cell_files():
    return [f"results/cells/{b}/{m}/{c}.json" for (b, m, c) in CELLS]


def get_cell_params(wildcards):
    return CELLS[(wildcards.build, wildcards.model, wildcards.cell)]


def get_cell_threads(wildcards):
    return get_cell_params(wildcards)["threads"]


def get_serve_cell_files():
    return [f"results/serving/{b}/{m}/{c}.json" for (b, m, c) in SERVE_CELLS]


def get_serve_cell_params(wildcards):
    return SERVE_CELLS[(wildcards.build, wildcards.model, wildcards.cell)]


def get_serve_cell_threads(wildcards):
    return get_serve_cell_params(wildcards)["threads"]


def get_serving_partners():
    """Each serving cell's file -> its llama-bench partner cell's file."""
    return {
        f"results/serving/{b}/{m}/{c}.json": "results/cells/{}/{}/{}.json".format(
            b, m, matrix.cell_id(matrix.bench_partner(params, BENCH))
        )
        for (b, m, c), params in SERVE_CELLS.items()
    }


wildcard_constraints:
    build="[A-Za-z0-9_.-]+",
    model="[A-Za-z0-9_.-]+",
    cell="[A-Za-z0-9_.+-]+",

import copy
import os
import sys
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

# The logic lives in the package workflow/scripts/llamabench: the one script
# (workflow/scripts/rule.py) finds it beside itself, the Snakefile here.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))

from llamabench import code_version, matrix, records, rpc_workers, source  # noqa: E402
from llamabench import build as build_options  # noqa: E402

# What the user wrote, before the schema fills in defaults.
GIVEN = copy.deepcopy(config)
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

BASE_CELLS, SERVE_CELLS = matrix.all_cells(config)
REMEASURE = BENCH["remeasure"]["enabled"]
# Every round a cell may get; only the planned ones are asked for up front (get_cell_files).
LAST_ROUND = max(BENCH["rounds"], BENCH["remeasure"]["max_rounds"] if REMEASURE else 0)
CELLS = matrix.with_rounds(BASE_CELLS, LAST_ROUND)
ROUND_POSITIONS = {
    r: {
        key: i
        for i, key in enumerate(matrix.round_order(list(BASE_CELLS), r, BENCH["seed"]))
    }
    for r in range(1, LAST_ROUND + 1)
}
RPC_CELLS = matrix.expand_rpc(config)


def check_topology(name, topology):
    """Before any job: the builds a topology names exist and speak RPC, and no worker binds wider than asked."""
    where = f"rpc.topologies.{name}"
    for role, build in [("client", topology["client"])] + [
        (f"workers[{i}].build", w["build"])
        for i, w in enumerate(topology["workers"])
        if "build" in w
    ]:
        check_names(f"{where}.{role}", [build], BUILDS, "builds")
        if not build_options.option_enabled(
            config["builds"][build]["cmake_options"], "GGML_RPC"
        ):
            raise ValueError(
                f"{where}.{role} names build '{build}', which is built without -DGGML_RPC=ON"
            )
    for i, worker in enumerate(topology["workers"]):
        needed = {
            "local": ["build"],
            "netns": ["build"],
            "ssh": ["host", "rpc_server", "port"],
            "static": ["address"],
        }[worker["kind"]]
        for key in needed:
            if key not in worker:
                raise ValueError(
                    f"{where}.workers[{i}] ({worker['kind']}) needs '{key}'"
                )
        bind = worker.get("bind", "127.0.0.1")
        if rpc_workers.needs_public_opt_in(bind):
            if not topology["allow_public_bind"]:
                raise ValueError(
                    f"{where}.workers[{i}].bind is {bind}: the RPC server has no authentication or "
                    "encryption, so binding it beyond loopback or a private network needs "
                    f"allow_public_bind: true in {where}"
                )
            logger.warning(
                f"{where}.workers[{i}] binds {bind}: anyone who reaches it can run "
                "computations and read or write tensors on that worker (no authentication, no encryption)."
            )
    if topology["link_rates"] != ["unlimited"] and not any(
        w["kind"] == "netns" for w in topology["workers"]
    ):
        raise ValueError(
            f"{where}.link_rates caps netns links only, and this topology has no netns worker"
        )


for _name, _topology in config["rpc"]["topologies"].items():
    check_topology(_name, _topology)
check_names("rpc.models", config["rpc"]["models"], MODELS, "models")


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
    """The planned rounds of every cell."""
    return [
        f"results/cells/{b}/{m}/{c}.json"
        for (b, m, c), cell in CELLS.items()
        if cell["round"] <= BENCH["rounds"]
    ]


def get_measured_cell_files(wildcards):
    """The planned rounds, and the extra rounds the noisy checkpoint chose (benchmark.remeasure)."""
    if not REMEASURE:
        return get_cell_files()
    extra = checkpoints.noisy.get().output[0]
    return get_cell_files() + records.read(extra, "noisy")["extra_cells"]


def get_cell(wildcards):
    return CELLS[(wildcards.build, wildcards.model, wildcards.cell)]


def get_cell_threads(wildcards):
    return get_cell(wildcards)["params"]["threads"]


def get_cell_priority(wildcards):
    """Round r before round r+1, and inside a round the seeded shuffled order: priorities, not inputs,
    so adding a cell or a round never reruns another cell's rounds."""
    cell = get_cell(wildcards)
    position = ROUND_POSITIONS[cell["round"]][
        (wildcards.build, wildcards.model, cell["base"])
    ]
    return (LAST_ROUND - cell["round"] + 1) * 1_000_000 - position


def get_all_builds_and_models():
    """Every build and model: no cell starts before all are ready, so round 1 of every cell runs first."""
    return expand("results/builds/{build}/manifest.json", build=BUILDS) + expand(
        "results/models/{model}/manifest.json", model=MODELS
    )


def get_serve_cell_files():
    return [f"results/serving/{b}/{m}/{c}.json" for (b, m, c) in SERVE_CELLS]


def get_serve_cell_params(wildcards):
    return SERVE_CELLS[(wildcards.build, wildcards.model, wildcards.cell)]


def get_serve_cell_threads(wildcards):
    return get_serve_cell_params(wildcards)["threads"]


def get_rpc_cell_files():
    return [f"results/rpc/{b}/{m}/{c}.json" for (b, m, c) in RPC_CELLS]


def get_rpc_cell(wildcards):
    return RPC_CELLS[(wildcards.build, wildcards.model, wildcards.cell)]


def get_rpc_worker_builds(wildcards):
    workers = get_rpc_cell(wildcards)["rpc"]["workers"]
    names = sorted({w["build"] for w in workers if "build" in w})
    return [f"results/builds/{name}/manifest.json" for name in names]


def get_serving_partners():
    """Each serving cell's file -> its llama-bench partner cell's file."""
    return {
        f"results/serving/{b}/{m}/{c}.json": "results/cells/{}/{}/{}.json".format(
            b, m, matrix.cell_id(matrix.bench_partner(params, BENCH))
        )
        for (b, m, c), params in SERVE_CELLS.items()
    }


wildcard_constraints:
    topology="[A-Za-z0-9_.-]+",
    build="[A-Za-z0-9_.-]+",
    model="[A-Za-z0-9_.-]+",
    cell="[A-Za-z0-9_.+-]+",

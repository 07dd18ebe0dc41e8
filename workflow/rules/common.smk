import copy
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

# The logic lives in the package workflow/scripts/llamabench: the one script
# (workflow/scripts/rule.py) finds it beside itself, the Snakefile here.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))

from llamabench import (
    code_version,
    hardware,
    history,
    matrix,
    platforms,
    presets,
    records,
    rpc_workers,
    source,
    synthetic,
)  # noqa: E402
from llamabench import build as build_options  # noqa: E402
from llamabench.errors import UserError  # noqa: E402

# A config may extend another file (presets share one study definition): merged here, first.
_resolved = presets.resolve(dict(config), Path("config"))
config.clear()
config.update(_resolved)
# What the user wrote, before the schema fills in defaults.
GIVEN = copy.deepcopy(config)
if "source" in config:
    raise ValueError(
        "source: is now sources:, a map of named trees: write 'sources: {main: {kind: ...}}' "
        "with the same keys indented under a name"
    )
validate(config, "../schemas/config.schema.yaml")

SOURCES = list(config["sources"])
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


for _build, _cfg in config["builds"].items():
    if "source" in _cfg:
        check_names(f"builds.{_build}.source", [_cfg["source"]], SOURCES, "sources")
    elif len(SOURCES) > 1:
        raise ValueError(
            f"builds.{_build}.source is needed: there are several sources ({', '.join(SOURCES)})"
        )
    else:
        _cfg["source"] = SOURCES[0]
for _model, _cfg in config["models"].items():
    if _cfg["kind"] != "synthetic":
        continue
    _where = f"models.{_model}"
    if "like" in _cfg:
        check_names(f"{_where}.like", [_cfg["like"]], MODELS, "models")
        if config["models"][_cfg["like"]]["kind"] == "synthetic":
            raise ValueError(f"{_where}.like names a synthetic model: name a real one")
    else:
        if "type" not in _cfg:
            raise ValueError(f"{_where}.type is needed (Q4_K_M, Q6_K, Q8_0, F16, ...)")
        try:
            synthetic.shape_of(_cfg)
        except UserError as err:
            raise ValueError(f"{_where}: {err}") from None
    _cfg.setdefault("build", BUILDS[0])
    check_names(f"{_where}.build", [_cfg["build"]], BUILDS, "builds")


def is_cuda(build):
    return build_options.option_enabled(
        config["builds"][build]["cmake_options"], "GGML_CUDA"
    )


def missing_nvcc():
    """The one sentence for a CUDA build whose nvcc is not here, or None."""
    for name in filter(is_cuda, config["builds"]):
        try:
            build_options.find_nvcc(name)
        except UserError as err:
            return str(err)
    return None


# A dry run still plans every job and says what is missing; a run here stops before the first job
# (onstart, which dry runs skip). Where jobs run elsewhere (a cluster), the nodes have their own nvcc.
if MISSING_NVCC := missing_nvcc():
    logger.warning(MISSING_NVCC)
elif not platforms.clustered(config) and any(map(is_cuda, config["builds"])):
    _gpus, _why = hardware.query_gpus(["name"])
    if _gpus:
        logger.info(f"CUDA builds will run on {', '.join(g['name'] for g in _gpus)}")
    else:
        logger.warning(
            f"nvcc is here but no GPU ({_why}): the CUDA builds are built, and their cells are "
            "recorded as skipped (a CUDA binary without a GPU runs on the CPU)"
        )


onstart:
    if MISSING_NVCC and workflow.local_exec:
        raise WorkflowError(MISSING_NVCC)


KEPT = history.labels(Path("results"))
# On a cluster a comparison may name build instances (<build>+<platform>), e.g. across platforms.
_INSTANCES = BUILDS + (
    [platforms.instance(b, p) for b in BUILDS for p in config["platforms"]]
    if platforms.clustered(config)
    else []
)
for _name, _comparison in config["comparisons"].items():
    _named = [_comparison["baseline"]] if "baseline" in _comparison else []
    # build@commit of a current build: a version this very run may keep (its source just changed)
    _kept_later = [
        n for n in _named + _comparison["builds"] if n.rpartition("@")[0] in _INSTANCES
    ]
    check_names(
        f"comparisons.{_name}",
        [n for n in _named + _comparison["builds"] if n not in _kept_later],
        _INSTANCES + KEPT,
        "builds (nor a version in results/history)",
    )
    for _version in sorted(set(_kept_later) - set(_INSTANCES + KEPT)):
        logger.warning(
            f"comparisons.{_name}: {_version} is not in results/history yet; its rows stay empty until it is"
        )
check_names("benchmark.builds", BENCH["builds"], BUILDS, "builds")
check_names("benchmark.models", BENCH["models"], MODELS, "models")
check_names("serving.builds", config["serving"]["builds"], BUILDS, "builds")
check_names("serving.models", config["serving"]["models"], MODELS, "models")
for _group, _axes in BENCH["groups"].items():
    check_names(
        f"benchmark.groups.{_group}.builds", _axes.get("builds", []), BUILDS, "builds"
    )


def check_topology(name, topology):
    """Before any job: the builds a topology names exist and speak RPC, and no worker binds wider than asked."""
    where = f"rpc.topologies.{name}"
    for role, build in [("client", topology["client"])] + [
        (f"workers[{i}].build", w["build"])
        for i, w in enumerate(topology["workers"])
        if "build" in w
    ]:
        check_names(f"{where}.{role}", [build], BUILDS, "builds")
        source_of = config["builds"][build]["source"]
        if source_of != config["builds"][topology["client"]]["source"]:
            raise ValueError(
                f"{where}.{role} names build '{build}' of source '{source_of}', the client's is "
                f"'{config['builds'][topology['client']]['source']}': RPC client and workers must be one commit"
            )
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


platforms.check(config)
# On a cluster, every build becomes one instance per platform (platforms.py); from here on the
# names are the instances'.
CLUSTER = platforms.clustered(config)
if CLUSTER:

    # Summaries, figures, the report and fetching sources and models run on the submitting host.
    localrules:
        source,
        model,
        noisy,
        summary,
        stats,
        export,
        serving_summary,
        rpc_summary,
        figures,
        report_html,
        all,

    _expanded = platforms.expand(config)
    config.clear()
    config.update(_expanded)
    BUILDS = list(config["builds"])


if not CLUSTER and workflow.global_resources.get("bench_slot") != 1:
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


def platform_resources(exclusive=True):
    """A job's scheduler resources, from its platform (platforms.py); none on a local run."""
    if not CLUSTER:
        return {}
    keys = sorted(
        {
            key
            for name in config["platforms"]
            for key in platforms.resources(config, name, exclusive=exclusive)
        }
    )

    def resource(key):
        def value(wildcards):
            found = platforms.resources(config, job_platform(wildcards), exclusive)
            return found.get(key, "" if key.startswith(("slurm_", "constraint")) else 0)

        return value

    return {key: resource(key) for key in keys}


def job_platform(wildcards):
    """The platform a job runs on: its own, its build's, its topology client's, or the first one."""
    if "platform" in wildcards.keys():
        return wildcards.platform
    if "build" in wildcards.keys():
        return platforms.platform_of(config, wildcards.build)
    if "topology" in wildcards.keys():
        client = config["rpc"]["topologies"][wildcards.topology]["client"]
        return platforms.platform_of(config, client)
    return platforms.platform_of(config, None)


def get_node_threads(wildcards):
    """All of the node (a build, an RPC cell, the bandwidth probe): the platform's cores on a cluster,
    this machine's here, never the submitting host's."""
    if CLUSTER:
        return config["platforms"][job_platform(wildcards)]["cpus"]
    return workflow.cores


def canonical(value):
    """Params with sorted keys: Snakemake compares params by repr, so key order must not matter."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    return value


def get_rule_version(rule):
    """The param that reruns a rule when its code changes (llamabench/code_version.py)."""
    return code_version.rule_version(rule)


def get_source_tree_state(wildcards):
    """A path checkout changes without its config changing: its fingerprint reruns the source rule."""
    cfg = config["sources"][wildcards.source]
    if cfg["kind"] != "path":
        return None
    return source.path_state(Path(cfg["path"]).expanduser())


def get_build_source(wildcards):
    return "results/sources/{}/manifest.json".format(
        config["builds"][wildcards.build]["source"]
    )


def get_model_inputs(wildcards):
    """A synthetic model needs the build whose llama-quantize it uses, and the model it copies (like)."""
    cfg = config["models"][wildcards.model]
    if cfg["kind"] != "synthetic":
        return {}
    found = {"build": f"results/builds/{cfg['build']}/manifest.json"}
    if "like" in cfg:
        found["like"] = ancient(f"results/models/{cfg['like']}/model.gguf")
    return found


def get_hardware_input(wildcards):
    """A CUDA build, and its cells, read what its platform's node has (hardware.py)."""
    if not is_cuda(wildcards.build):
        return {}
    return {
        "hardware": f"results/hardware/{platforms.platform_of(config, wildcards.build)}.json"
    }


def get_model_generator(wildcards):
    """A synthetic model is made again when the file its generator writes changes."""
    if config["models"][wildcards.model]["kind"] != "synthetic":
        return None
    return synthetic.GENERATOR_VERSION


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


# Sources, builds and models come before every cell (a cell's priority is at most a few million):
# then round 1 of every cell of every build runs before round 2 of any. A priority, not an input,
# so adding a build or a source never reruns the cells of the others.
PREPARE_PRIORITY = 1_000_000_000


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
    source="[A-Za-z0-9_.-]+",
    platform="[A-Za-z0-9_.-]+",
    topology="[A-Za-z0-9_.+-]+",
    build="[A-Za-z0-9_.@+-]+",
    model="[A-Za-z0-9_.-]+",
    cell="[A-Za-z0-9_.+-]+",

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

# The logic lives in the package workflow/scripts/llamabench: the one script
# (workflow/scripts/rule.py) finds it beside itself, the Snakefile here.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))

from llamabench import preflight, source  # noqa: E402
from llamabench.core import (
    chains,
    code_version,
    configuration,
    history,
    layout,
    matrix,
    plan,
    platforms,
    quality,
    records,
    shapes,
)  # noqa: E402

# Validation: presets merged, the schema's defaults filled in, every name checked, keys sorted. Every job
# sees this config; the plan is computed from it once, here.
_KEPT = history.labels(Path(layout.RESULTS))
_resolved = configuration.resolve(config, Path("config"), kept=_KEPT)
config.clear()
config.update(_resolved)
PLAN = plan.make(config)
for _warning in configuration.warnings(config, _KEPT):
    logger.warning(_warning)

# A dry run still plans every job and says what is missing; a run here stops before the first job.
if MISSING_TOOLS := preflight.missing_tools(PLAN):
    logger.warning(MISSING_TOOLS)
if _note := preflight.gpu_note(PLAN):
    (logger.warning if _note[1] else logger.info)(_note[0])


onstart:
    if MISSING_TOOLS and workflow.local_exec:
        raise WorkflowError(MISSING_TOOLS)


if PLAN.cluster:

    # Summaries, figures, the report and fetching sources and models run on the submitting host.
    localrules:
        source,
        model,
        remeasure,
        tune_round,
        tune,
        load_sweep,
        bisect_step,
        bisect_study,
        history_range,
        history_study,
        summary,
        stats,
        export,
        serving_summary,
        rpc_summary,
        findings,
        figures,
        report_html,
        all,


if not PLAN.cluster and workflow.global_resources.get("bench_slot") != 1:
    logger.warning(
        "bench_slot is not limited to 1 (profiles/default not loaded?): "
        "benchmark cells may run at the same time and disturb each other."
    )

RULE_SCRIPT = "../scripts/rule.py"
PREPARE_PRIORITY = plan.PREPARE_PRIORITY


def platform_resources(exclusive=True):
    """A job's scheduler resources, from its platform (core/platforms.py); none on a local run."""
    if not PLAN.cluster:
        return {}
    keys = sorted(
        {
            key
            for spec in PLAN.platforms.values()
            for key in platforms.resources(spec, exclusive=exclusive)
        }
    )

    def resource(key):
        def value(wildcards):
            spec = PLAN.platforms[job_platform(wildcards)]
            found = platforms.resources(spec, exclusive)
            return found.get(key, "" if key.startswith(("slurm_", "constraint")) else 0)

        return value

    return {key: resource(key) for key in keys}


def job_platform(wildcards):
    """The platform a job runs on: its own, its build's, its topology client's, or the first one."""
    if "platform" in wildcards.keys():
        return wildcards.platform
    if "build" in wildcards.keys():
        return PLAN.platform_of(wildcards.build)
    if "topology" in wildcards.keys():
        return PLAN.platform_of(PLAN.topologies[wildcards.topology]["client"])
    return PLAN.platform_of(None)


def get_node_threads(wildcards):
    """All of the node (a build, an RPC cell, the bandwidth probe): the platform's cores on a cluster,
    this machine's here, never the submitting host's."""
    if PLAN.cluster:
        return PLAN.platforms[job_platform(wildcards)]["cpus"]
    return workflow.cores


def get_rule_version(rule):
    """The param that reruns a rule when its code changes (core/code_version.py)."""
    return code_version.rule_version(rule)


def get_source_tree_state(wildcards):
    """A path checkout changes without its config changing: its fingerprint reruns the source rule."""
    spec = PLAN.sources[wildcards.source]
    if spec["kind"] != "path":
        return None
    return source.path_state(Path(spec["path"]).expanduser())


def get_build_source(wildcards):
    return layout.path("source", source=PLAN.builds[wildcards.build].source)


def get_model_inputs(wildcards):
    """A synthetic or quantized model needs the build whose llama-quantize it uses, and the model it copies (like)
    or quantises (from), with its record (its sha256 keys the cache)."""
    spec = PLAN.models[wildcards.model]
    if spec["kind"] not in ("synthetic", "quantized"):
        return {}
    found = {"build": layout.path("build", build=spec["build"])}
    if "like" in spec or "from" in spec:
        source = spec.get("like") or spec["from"]
        found["like"] = ancient(layout.path("model_file", model=source))
        found["like_manifest"] = layout.path("model", model=source)
    return found


def get_hardware_input(wildcards):
    """A CUDA build, and its cells, read what its platform's node has (rule hardware)."""
    build = PLAN.builds[wildcards.build]
    if not build.cuda:
        return {}
    return {"hardware": layout.path("hardware", platform=build.platform)}


def get_model_generator(wildcards):
    """A synthetic model is made again when the file its generator writes changes."""
    if PLAN.models[wildcards.model]["kind"] != "synthetic":
        return None
    return shapes.GENERATOR_VERSION


def get_model_file_state(wildcards):
    """Likewise for a path model: size and mtime of the user's file."""
    spec = PLAN.models[wildcards.model]
    path = Path(spec.get("path", "")).expanduser()
    if spec["kind"] != "path" or not path.exists():
        return None
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def recorded(checkpoint):
    """A checkpoint's record by its key, for the plan's chains (core/chains.py): Snakemake waits for the record,
    then evaluates the input function again."""
    made = getattr(checkpoints, checkpoint)
    return lambda **key: records.read(made.get(**key).output[0], checkpoint)


def get_planned(kind):
    """The planned rounds of every cell of ``kind`` (bench_cell, serve_cell, rpc_cell)."""
    return [cell.path for cell in PLAN.planned(kind)]


def get_measured(kind):
    """An input function: the planned rounds of ``kind`` and the extra rounds the re-measure checkpoint chose."""
    return lambda wildcards: chains.measured(PLAN, kind, recorded("remeasure"))


def cell_lookup(rule):
    """The plan's cell behind a job of a cell rule (bench_cell, its variant tune_cell, ...), by the rule's name,
    which is its output's layout key, and the job's wildcards."""
    return lambda wildcards: PLAN.cell_of(rule, wildcards)


def cell_priority(rule):
    """A cell rule's priority: round r of every cell before round r + 1 (core/plan.py)."""
    cell = cell_lookup(rule)
    return lambda wildcards: cell(wildcards).priority


def cell_threads(rule):
    """A llama-bench or llama-server cell's threads: those it measures with."""
    cell = cell_lookup(rule)
    return lambda wildcards: cell(wildcards).params["threads"]


def cell_params(rule):
    """What a cell rule's job measures, so that a change measures it again. Its place in the round, the seed and
    the timeout are bookkeeping, which the job reads from the plan."""
    cell = cell_lookup(rule)
    return {
        "cell": lambda wildcards: plan.thaw(cell(wildcards).params),
        "round": lambda wildcards: cell(wildcards).round,
        "base_cell": lambda wildcards: cell(wildcards).base,
    }


def get_rpc_worker_builds(wildcards):
    workers = (
        PLAN.topologies[wildcards.topology]["workers"]
        if "topology" in wildcards.keys()
        else (PLAN.cell_of("rpc_cell", wildcards).setup["workers"])
    )
    names = sorted({w["build"] for w in workers if "build" in w})
    return [layout.path("build", build=name) for name in names]


def get_measured_serving_partners(wildcards):
    """The llama-bench partners of the serving cells measured (their estimates, round by round)."""
    partners = PLAN.serving_partners()
    return [partners[path] for path in get_measured("serve_cell")(wildcards)]


def get_tune_round_input(wildcards):
    """Decision r reads decision r - 1 and every cell measured so far (round r's among them)."""
    return chains.tune_round_input(
        PLAN,
        wildcards.study,
        wildcards.build,
        wildcards.model,
        int(wildcards.round),
        recorded("tune_round"),
    )


def get_tune_input(wildcards):
    """Each race's last decision (its chain walked until one says the study ended) and its cells."""
    return chains.tune_input(PLAN, wildcards.study, recorded("tune_round"))


def get_dataset_input(wildcards):
    """A serving cell's (or a load sweep's) dataset of prompts: a changed file measures again."""
    if "sweep" in wildcards.keys():
        params = PLAN.sweeps[wildcards.sweep].params
    else:
        params = PLAN.cell_of("serve_cell", wildcards).params
    dataset = params.get("dataset")
    return {"dataset": str(Path(dataset).expanduser())} if dataset else {}


def get_load_sweep_input(wildcards):
    """Every pilot of the sweep and every round of every level of every build and model."""
    return chains.load_sweep_input(PLAN, wildcards.sweep, recorded("load_pilot"))


def get_quality_text_input(wildcards):
    """The source tree whose docs make the quality text (none when the user names a text file)."""
    source = PLAN.quality_text_source
    return {"source": layout.path("source", source=source)} if source else {}


def get_quality_reference(wildcards):
    """A quality cell's reference record, and the model (file and record: its logits are made again from it, its
    vocabulary checked against the cell's) of that reference: its own, or a ladder rung's (or named reference's)
    source model."""
    against = PLAN.quality_cell(
        wildcards.build, wildcards.model, wildcards.cell
    ).against
    return {
        "reference": layout.path(
            "quality_reference", build=against.build, model=against.model
        ),
        "reference_model": ancient(layout.path("model_file", model=against.model)),
        "reference_manifest": layout.path("model", model=against.model),
    }


def commit_study(wildcards):
    """The bisect or history study a commit cell's wildcards name (a bisect's cells name their probe)."""
    kind = "bisect" if "probe" in wildcards.keys() else "history"
    return PLAN.commit_study(kind, wildcards.study)


def get_commit_build(wildcards):
    return chains.probe_path(commit_study(wildcards), wildcards.commit)


def get_bisect_step_input(wildcards):
    """Step 0 reads what chooses its range or cells; step n the state of step n - 1 and what it asked for."""
    return chains.bisect_step_input(
        PLAN,
        wildcards.study,
        int(wildcards.step),
        recorded("bisect_step"),
        recorded("probe_build"),
    )


def get_bisect_study_input(wildcards):
    """Every step until the one that ended the study, and every build and cell they measured, each once."""
    return chains.bisect_study_input(
        PLAN, wildcards.study, recorded("bisect_step"), recorded("probe_build")
    )


def get_history_study_input(wildcards):
    """The range, every commit's build, and every round of every cell of the commits that built."""
    return chains.history_study_input(
        PLAN, wildcards.study, recorded("history_range"), recorded("probe_build")
    )


wildcard_constraints:
    source="[A-Za-z0-9_.-]+",
    platform="[A-Za-z0-9_.-]+",
    topology="[A-Za-z0-9_.+-]+",
    build="[A-Za-z0-9_.@+-]+",
    model="[A-Za-z0-9_.-]+",
    cell="[A-Za-z0-9_.+-]+",
    study="[A-Za-z0-9_.-]+",
    sweep="[A-Za-z0-9_.-]+",
    round="[0-9]+",
    commit="[0-9a-f]{40}",
    probe="[0-9]+",
    step="[0-9]+",

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

# The logic lives in the package workflow/scripts/llamabench: the one script
# (workflow/scripts/rule.py) finds it beside itself, the Snakefile here.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))

from llamabench import preflight, source  # noqa: E402
from llamabench.derive import bisect as bisect_steps  # noqa: E402
from llamabench.core import (
    code_version,
    configuration,
    history,
    layout,
    matrix,
    plan,
    platforms,
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
if MISSING_CUDA := preflight.missing_cuda(PLAN):
    logger.warning(MISSING_CUDA)
if _note := preflight.gpu_note(PLAN):
    (logger.warning if _note[1] else logger.info)(_note[0])


onstart:
    if MISSING_CUDA and workflow.local_exec:
        raise WorkflowError(MISSING_CUDA)


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
    """A synthetic model needs the build whose llama-quantize it uses, and the model it copies (like)."""
    spec = PLAN.models[wildcards.model]
    if spec["kind"] != "synthetic":
        return {}
    found = {"build": layout.path("build", build=spec["build"])}
    if "like" in spec:
        found["like"] = ancient(layout.path("model_file", model=spec["like"]))
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


def get_planned(kind):
    """The planned rounds of every cell of ``kind`` (bench_cell, serve_cell, rpc_cell)."""
    return [cell.path for cell in PLAN.planned(kind)]


def get_measured(kind):
    """An input function: the planned rounds of ``kind``, and the extra rounds the re-measure checkpoint chose
    (disturbed or noisy cells, and the cells they are compared with)."""

    def measured(wildcards):
        if not PLAN.remeasure:
            return get_planned(kind)
        decided = records.read(checkpoints.remeasure.get().output[0], "remeasure")
        chosen = [
            (d["kind"], d["build"], d["model"], d["cell"], d["last_round"])
            for d in decided["decisions"]
        ]
        extra = [cell.path for cell in PLAN.extra_rounds(chosen) if cell.kind == kind]
        return get_planned(kind) + extra

    return measured


def get_cell(wildcards):
    return PLAN.cell("bench_cell", wildcards.build, wildcards.model, wildcards.cell)


def get_serve_cell(wildcards):
    return PLAN.cell("serve_cell", wildcards.build, wildcards.model, wildcards.cell)


def get_rpc_cell(wildcards):
    return PLAN.cell("rpc_cell", wildcards.build, wildcards.model, wildcards.cell)


def get_rpc_worker_builds(wildcards):
    workers = (
        PLAN.topologies[wildcards.topology]["workers"]
        if "topology" in wildcards.keys()
        else (get_rpc_cell(wildcards).setup["workers"])
    )
    names = sorted({w["build"] for w in workers if "build" in w})
    return [layout.path("build", build=name) for name in names]


def get_serving_partners():
    """Each serving cell's file (every round it may get) -> its llama-bench partner's file of the same round."""
    return {
        cell.path: layout.path("bench_cell", build=b, model=m, cell=c)
        for cell in PLAN.serving.values()
        for b, m, c in [cell.partner]
    }


def get_measured_serving_partners(wildcards):
    """The llama-bench partners of the serving cells measured (their estimates, round by round)."""
    partners = get_serving_partners()
    return [partners[path] for path in get_measured("serve_cell")(wildcards)]


def get_tune_cell(wildcards):
    return PLAN.tune_cell(
        wildcards.study, wildcards.build, wildcards.model, wildcards.cell
    )


def get_tune_round_input(wildcards):
    """Decision r reads decision r - 1 and every cell measured so far (round r's among them)."""
    round_ = int(wildcards.round)
    build = layout.path("build", build=wildcards.build)
    if round_ == 0:
        return {"build": build}
    key = dict(study=wildcards.study, build=wildcards.build, model=wildcards.model)
    previous = checkpoints.tune_round.get(**key, round=round_ - 1).output[0]
    state = records.read(previous, "tune_round")["state"]
    chosen = [*state["measured"], *[(c, round_) for c in state["next"]]]
    cells = PLAN.tune_cells(wildcards.study, wildcards.build, wildcards.model, chosen)
    return {"build": build, "previous": previous, "cells": [c.path for c in cells]}


def get_tune_input(wildcards):
    """Each race's last decision (the chain of checkpoints walked until one says the study ended) and its cells."""
    decisions, cells = [], []
    for study, build, model in PLAN.tune_pairs():
        if study != wildcards.study:
            continue
        round_ = 0
        while True:
            path = checkpoints.tune_round.get(
                study=study, build=build, model=model, round=round_
            ).output[0]
            state = records.read(path, "tune_round")["state"]
            if state["ended"]:
                break
            round_ += 1
        decisions.append(path)
        cells += [
            c.path for c in PLAN.tune_cells(study, build, model, state["measured"])
        ]
    return {"decisions": decisions, "cells": cells}


def get_load_cell(wildcards):
    return PLAN.load_cell(
        wildcards.sweep, wildcards.build, wildcards.model, wildcards.cell
    )


def get_dataset_input(wildcards):
    """A serving cell's (or a load sweep's) dataset of prompts: a changed file measures again."""
    if "sweep" in wildcards.keys():
        params = PLAN.sweeps[wildcards.sweep].params
    else:
        params = get_serve_cell(wildcards).params
    dataset = params.get("dataset")
    return {"dataset": str(Path(dataset).expanduser())} if dataset else {}


def get_load_levels(sweep, model):
    """A sweep's rates for one model: the config's, or every build's pilot's (their union, so builds pair)."""
    found = PLAN.sweeps[sweep]
    if not found.piloted:
        return found.settings["rates"]
    rates = set()
    for build in found.builds:
        pilot = checkpoints.load_pilot.get(sweep=sweep, build=build, model=model)
        rates |= set(records.read(pilot.output[0], "load_pilot")["chosen"])
    return sorted(rates)


def get_load_sweep_input(wildcards):
    """Every pilot of the sweep and every round of every level of every build and model."""
    found = PLAN.sweeps[wildcards.sweep]
    pilots = [
        layout.path("load_pilot", sweep=name, build=build, model=model)
        for name, build, model in PLAN.load_pairs()
        if name == wildcards.sweep and found.piloted
    ]
    cells = [
        cell.path
        for model in found.models
        for cell in PLAN.load_cells(
            wildcards.sweep, model, get_load_levels(wildcards.sweep, model)
        )
    ]
    return {"pilots": pilots, "cells": cells}


def commit_study(wildcards):
    """The bisect or history study a commit cell's wildcards name (a bisect's cells name their probe)."""
    kind = "bisect" if "probe" in wildcards.keys() else "history"
    return PLAN.commit_study(kind, wildcards.study)


def probe_path(found, commit):
    """A study's build of ``commit`` (shared by every study of the same source and build)."""
    return layout.path(
        "probe_build", source=found.source, build=found.build, commit=commit
    )


def probe_built(found, commit):
    """Whether a study's commit built (a checkpoint: asked before any of its cells)."""
    out = checkpoints.probe_build.get(
        source=found.source, build=found.build, commit=commit
    ).output.manifest
    return records.read(out, "probe_build")["status"] == "ok"


def get_commit_build(wildcards):
    return probe_path(commit_study(wildcards), wildcards.commit)


def get_commit_cell(wildcards):
    found = commit_study(wildcards)
    probe = int(wildcards.probe) if found.kind == "bisect" else None
    return PLAN.commit_cell(
        found.kind, found.name, wildcards.commit, wildcards.model, wildcards.cell, probe
    )


def bisect_measurement(study, state):
    """The builds and cells of the measurement a bisect state asks for next."""
    found = PLAN.bisects[study]
    commits = [state["commits"][p]["commit"] for p in bisect_steps.measured(state)]
    wanted = state["next"]
    cells = PLAN.commit_cells(
        "bisect",
        study,
        [c for c in commits if probe_built(found, c)],
        state["cells"],
        range(1, wanted["rounds"] + 1),
        probe=wanted["probe"],
    )
    return [probe_path(found, c) for c in commits], [c.path for c in cells]


def get_bisect_step_input(wildcards):
    """Step 0 reads what chooses its range or cells (a history study, the comparisons); step n the state of step
    n - 1 and the measurement it asked for."""
    found = PLAN.bisects[wildcards.study]
    step = int(wildcards.step)
    if step == 0:
        inputs = {}
        if "history" in found.settings:
            inputs["history"] = layout.path(
                "history_study", study=found.settings["history"]
            )
        if "comparison" in found.settings:
            inputs["comparisons"] = layout.path("comparisons")
        return inputs
    previous = checkpoints.bisect_step.get(study=wildcards.study, step=step - 1).output[
        0
    ]
    state = records.read(previous, "bisect_step")["state"]
    builds, cells = bisect_measurement(wildcards.study, state)
    return {"previous": previous, "builds": builds, "cells": cells}


def get_bisect_study_input(wildcards):
    """Every step until the one that ended the study, and every build and cell they measured."""
    steps, builds, cells = [], [], []
    step = 0
    while True:
        path = checkpoints.bisect_step.get(study=wildcards.study, step=step).output[0]
        steps.append(path)
        state = records.read(path, "bisect_step")["state"]
        if state["ended"]:
            return {"steps": steps, "builds": sorted(set(builds)), "cells": cells}
        found_builds, found_cells = bisect_measurement(wildcards.study, state)
        builds += found_builds
        cells += found_cells
        step += 1


def get_history_study_input(wildcards):
    """The range, every commit's build, and every round of every cell of the commits that built."""
    found = PLAN.histories[wildcards.study]
    commits = [
        c["commit"]
        for c in records.read(
            checkpoints.history_range.get(study=wildcards.study).output[0],
            "history_range",
        )["commits"]
    ]
    cells = PLAN.commit_cells(
        "history",
        wildcards.study,
        [c for c in commits if probe_built(found, c)],
        list(found.cells),
        range(1, found.settings["rounds"] + 1),
    )
    return {
        "range": layout.path("history_range", study=wildcards.study),
        "builds": [probe_path(found, c) for c in commits],
        "cells": [c.path for c in cells],
    }


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

"""One function per rule: unpack the ``snakemake`` object, call the logic, write the outputs.

Kept apart from the logic modules so those stay plain functions that tests
call without Snakemake. pandas, matplotlib and jinja2 are imported only by
the steps that use them: a benchmark cell's process should start fast and
stay quiet while llama-bench measures.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from llamabench import bench, build, files, matrix, models, smoke, source

log = logging.getLogger(__name__)


def fetch_source(smk: Any) -> None:
    files.write_json(smk.output.manifest, source.materialize(dict(smk.params.source)))


def build_variant(smk: Any) -> None:
    src = files.read_json(smk.input.source)
    name = smk.wildcards.build
    options = list(smk.params.cmake_options)
    entry = build.build(src, name, options, smk.threads)
    bin_dir = Path(smk.output.bin)
    build.install(entry, bin_dir)
    files.write_json(
        smk.output.manifest,
        files.manifest(
            "llama.cpp-build",
            name=name,
            requested_options=options,
            options=entry["options"],
            commit=src.get("commit"),
            build_number=src.get("build_number"),
            source_kind=src["source_kind"],
            compiler=entry["compiler"],
            cmake=entry["cmake"],
            nvcc=entry["nvcc"],
            ccache=entry["ccache"],
            cache_key=entry["key"],
            cache_dir=entry["cache_dir"],
            cache_hit=entry["cache_hit"],
            bin_dir=str(bin_dir),
            binaries=entry["binaries"],
            devices=build.list_devices(bin_dir, entry["binaries"]),
        ),
    )


def fetch_model(smk: Any) -> None:
    manifest = models.fetch(smk.wildcards.model, dict(smk.params.model), Path(smk.output.gguf))
    files.write_json(smk.output.manifest, manifest)


def smoke_run(smk: Any) -> None:
    build_info = files.read_json(smk.input.build)
    exe = Path(build_info["bin_dir"]) / build_info["binaries"]["completion"]
    cfg = smk.params.smoke
    label = f"{smk.wildcards.build}/{smk.wildcards.model}"
    cmd = smoke.command(exe, Path(smk.input.model), cfg["prompt"], cfg["n_predict"], cfg["seed"], cfg["threads"])
    result = smoke.run(cmd, Path(smk.log[0]), timeout=smk.config["smoke"]["timeout"])
    announce_failure(f"smoke run {label}", result)
    files.write_json(smk.output[0], {"build": smk.wildcards.build, "model": smk.wildcards.model, **result})


def announce_failure(what: str, result: dict[str, Any]) -> None:
    """A recorded failure lets the job succeed, so say it on the console and in the log."""
    if result["status"] != "ok":
        log.warning("%s failed: %s", what, result["error"])
        print(f"llamabench: {what} failed: {result['error']}")


def bench_cell(smk: Any) -> None:
    build_info = files.read_json(smk.input.build)
    model_info = files.read_json(smk.input.model_manifest)
    params = dict(smk.params.cell)
    label = f"{smk.wildcards.build}/{smk.wildcards.model}/{smk.wildcards.cell}"
    log.info("cell %s", label)
    exe = Path(build_info["bin_dir"]) / build_info["binaries"]["bench"]
    cmd = bench.command(exe, Path(smk.input.model), params, smk.params.delay)
    result = bench.run_cell(cmd, Path(smk.log[0]), timeout=smk.config["benchmark"]["timeout"])
    announce_failure(f"cell {label}", result)
    files.write_json(
        smk.output[0],
        {
            "cell": smk.wildcards.cell,
            "build": smk.wildcards.build,
            "model": smk.wildcards.model,
            "params": params,
            "delay": smk.params.delay,
            "host": files.host_info(),
            "build_info": {k: build_info.get(k) for k in
                           ("commit", "build_number", "options", "compiler", "cmake", "cache_key", "devices")},
            "model_info": {k: model_info.get(k) for k in ("sha256", "size_bytes", "gguf", "origin")},
            "log": smk.log[0],
            "llama_bench": result,
        },
    )


def summarize(smk: Any) -> None:
    from llamabench import aggregate

    summary = aggregate.summarize([Path(p) for p in smk.input.cells])
    with files.atomic_path(Path(smk.output.csv)) as tmp:
        summary.to_csv(tmp, index=False)
    by_key = {(Path(p).parent.parent.name, Path(p).parent.name, Path(p).stem): p for p in smk.input.cells}
    failed = summary[summary["status"] != "ok"]
    paths = [by_key[(r.build, r.model, r.cell)] for r in failed.itertuples()]
    with files.atomic_path(Path(smk.output.failed)) as tmp:
        tmp.write_text("".join(f"{p}\n" for p in paths))


def plot_figures(smk: Any) -> None:
    import pandas as pd

    from llamabench import aggregate, figures

    summary = pd.read_csv(smk.input.csv)
    base = dict(smk.params.baseline)
    for name in matrix.FIGURES:
        figures.plot(summary, name, base, Path(smk.output[f"{name}_png"]), Path(smk.output[f"{name}_svg"]))
    best = aggregate.best_settings(summary, base)
    with files.atomic_path(Path(smk.output.table_csv)) as tmp:
        best.to_csv(tmp, index=False)
    with files.atomic_path(Path(smk.output.table_md)) as tmp:
        tmp.write_text(best.to_markdown(index=False) + "\n" if not best.empty else "No successful cells.\n")


def write_report(smk: Any) -> None:
    import pandas as pd

    from llamabench import report

    summary = pd.read_csv(smk.input.csv)
    best = pd.read_csv(smk.input.table)
    builds = [files.read_json(p) for p in smk.input.builds]
    page = report.render(
        summary=summary,
        best=best,
        figure_pngs=[Path(p) for p in smk.input.figures],
        baseline=dict(smk.params.baseline),
        builds=builds,
        models=[files.read_json(p) for p in smk.input.models],
        smokes=[files.read_json(p) for p in smk.input.smokes],
        source=files.read_json(smk.input.source),
    )
    with files.atomic_path(Path(smk.output[0])) as tmp:
        tmp.write_text(page)

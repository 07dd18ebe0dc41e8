# llama.cpp deployment and benchmark workflow: source -> builds -> models -> smoke runs ->
# benchmark, serving and RPC cells -> summaries -> statistics -> findings, figures -> results/report.html.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/source.smk"
include: "workflow/rules/hardware.smk"
include: "workflow/rules/build.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/smoke.smk"
include: "workflow/rules/bench_cell.smk"
include: "workflow/rules/serve_cell.smk"
include: "workflow/rules/rpc_cell.smk"
include: "workflow/rules/rpc_smoke.smk"
include: "workflow/rules/bandwidth.smk"
include: "workflow/rules/remeasure.smk"
include: "workflow/rules/tune_round.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/load_pilot.smk"
include: "workflow/rules/load_sweep.smk"
include: "workflow/rules/probe_build.smk"
include: "workflow/rules/bisect_step.smk"
include: "workflow/rules/bisect_study.smk"
include: "workflow/rules/history_range.smk"
include: "workflow/rules/history_study.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/serving_summary.smk"
include: "workflow/rules/rpc_summary.smk"
include: "workflow/rules/memory_table.smk"
include: "workflow/rules/perplexity_build.smk"
include: "workflow/rules/quality_text.smk"
include: "workflow/rules/quality_cell.smk"
include: "workflow/rules/quality_summary.smk"
include: "workflow/rules/findings.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report_html.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        layout.path("report_html"),
        layout.path("export_sqlite"),
        # asked for by name: a checkpoint a finished summary depends on is otherwise never revisited
        [layout.path("remeasure")] if PLAN.remeasure else [],

# llama.cpp deployment and benchmark workflow: source -> builds -> models ->
# smoke runs -> benchmark cells -> summary -> figures -> results/report.html.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/source.smk"
include: "workflow/rules/build.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/smoke.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        "results/report.html",

# llama-bench: one rule, bench_cell, and its variants, which differ in the cell they measure (Plan.cell_of, by the
# rule's name), where it goes and what the console says; the module is the same (llamabench/bench_cell.py).
#
# model.gguf is hard-linked from the shared cache, and other checkouts touch that
# inode: its mtime says nothing, so it is ancient() and the model record (sha256) decides.
rule bench_cell:
    input:
        unpack(get_hardware_input),
        build=layout.pattern("build"),
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
    output:
        layout.pattern("bench_cell"),
    log:
        layout.log_pattern("bench_cell"),
    priority: cell_priority("bench_cell")
    conda:
        "../../envs/llamabench.yaml"
    threads: cell_threads("bench_cell")
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        **cell_params("bench_cell"),
        delay=PLAN.benchmark["delay"],
        version=get_rule_version("bench_cell"),
    message:
        "Benchmark cell {wildcards.build}/{wildcards.model}/{wildcards.cell}"
    script:
        RULE_SCRIPT


# One round of one tuning candidate, in the study's own directory: a study never borrows a grid's measurement.
use rule bench_cell as tune_cell with:
    output:
        layout.pattern("tune_cell"),
    log:
        layout.log_pattern("tune_cell"),
    priority: cell_priority("tune_cell")
    threads: cell_threads("tune_cell")
    params:
        **cell_params("tune_cell"),
        version=get_rule_version("tune_cell"),
    message:
        "Tuning {wildcards.study}: {wildcards.build}/{wildcards.model}/{wildcards.cell}"


# One round of one cell on one commit of a history study, with the commit's build (a probe's, not a configured one).
use rule bench_cell as history_cell with:
    input:
        build=get_commit_build,
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
    output:
        layout.pattern("history_cell"),
    log:
        layout.log_pattern("history_cell"),
    priority: cell_priority("history_cell")
    threads: cell_threads("history_cell")
    params:
        **cell_params("history_cell"),
        version=get_rule_version("history_cell"),
    message:
        "History {wildcards.study}: {wildcards.commit}/{wildcards.model}/{wildcards.cell}"


# One round of one cell on one commit of a bisect probe, measured as a history's is, under the probe's own
# directory: every probe measures the endpoints again beside itself.
use rule history_cell as bisect_cell with:
    output:
        layout.pattern("bisect_cell"),
    log:
        layout.log_pattern("bisect_cell"),
    priority: cell_priority("bisect_cell")
    threads: cell_threads("bisect_cell")
    params:
        **cell_params("bisect_cell"),
        version=get_rule_version("bisect_cell"),
    message:
        "Bisect {wildcards.study}, probe {wildcards.probe}: {wildcards.commit}/{wildcards.model}/{wildcards.cell}"

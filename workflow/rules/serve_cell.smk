# llama-server: one rule, serve_cell, and its variants, which differ in the cell they measure (Plan.cell_of, by the
# rule's name), where it goes and what the console says; the module is the same (llamabench/serve_cell.py).
#
# model.gguf is hard-linked from the shared cache, and other checkouts touch that
# inode: its mtime says nothing, so it is ancient() and the model record (sha256) decides.
rule serve_cell:
    input:
        unpack(get_hardware_input),
        unpack(get_dataset_input),
        build=layout.pattern("build"),
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
    output:
        layout.pattern("serve_cell"),
    log:
        layout.log_pattern("serve_cell"),
    priority: cell_priority("serve_cell")
    conda:
        "../../envs/llamabench.yaml"
    threads: cell_threads("serve_cell")
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        **cell_params("serve_cell"),
        version=get_rule_version("serve_cell"),
    message:
        "Serving cell {wildcards.build}/{wildcards.model}/{wildcards.cell}"
    script:
        RULE_SCRIPT


# One round of one level of a load sweep, at its offered rate, in the sweep's own directory.
use rule serve_cell as load_cell with:
    output:
        layout.pattern("load_cell"),
    log:
        layout.log_pattern("load_cell"),
    priority: cell_priority("load_cell")
    threads: cell_threads("load_cell")
    params:
        **cell_params("load_cell"),
        version=get_rule_version("load_cell"),
    message:
        "Load {wildcards.sweep}: {wildcards.build}/{wildcards.model}/{wildcards.cell}"


# One round of one candidate of a served-objective tuning study (TTFT, throughput), in the study's own directory.
# Its inputs are serve_cell's but the dataset file: a changed one measures no candidate again.
use rule serve_cell as tune_serve_cell with:
    input:
        unpack(get_hardware_input),
        build=layout.pattern("build"),
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
    output:
        layout.pattern("tune_serve_cell"),
    log:
        layout.log_pattern("tune_serve_cell"),
    priority: cell_priority("tune_serve_cell")
    threads: cell_threads("tune_serve_cell")
    params:
        **cell_params("tune_serve_cell"),
        version=get_rule_version("tune_serve_cell"),
    message:
        "Tuning {wildcards.study}: {wildcards.build}/{wildcards.model}/{wildcards.cell}"

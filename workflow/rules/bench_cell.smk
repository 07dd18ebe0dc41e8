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
    priority: lambda wildcards: get_cell(wildcards).priority
    conda:
        "../../envs/llamabench.yaml"
    threads: lambda wildcards: get_cell(wildcards).params["threads"]
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        # What the cell is and measures; its place in the round, the seed and the timeout are bookkeeping,
        # which the job reads from the plan.
        cell=lambda wildcards: plan.thaw(get_cell(wildcards).params),
        round=lambda wildcards: get_cell(wildcards).round,
        base_cell=lambda wildcards: get_cell(wildcards).base,
        delay=PLAN.benchmark["delay"],
        version=get_rule_version("bench_cell"),
    message:
        "Benchmark cell {wildcards.build}/{wildcards.model}/{wildcards.cell}"
    script:
        RULE_SCRIPT

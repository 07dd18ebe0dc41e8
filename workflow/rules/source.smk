rule source:
    output:
        manifest=layout.pattern("source"),
    log:
        layout.log_pattern("source"),
    benchmark:
        layout.benchmark("source")
    priority: PREPARE_PRIORITY
    conda:
        "../../envs/llamabench.yaml"
    resources:
        bench_slot=1,
    params:
        source=lambda wildcards: plan.thaw(PLAN.sources[wildcards.source]),
        tree_state=get_source_tree_state,
        version=get_rule_version("source"),
    message:
        "Fetching llama.cpp source '{wildcards.source}' ({params.source[kind]})"
    script:
        RULE_SCRIPT

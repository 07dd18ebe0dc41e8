rule source:
    output:
        manifest="results/sources/{source}/manifest.json",
    log:
        "results/logs/source/{source}.log",
    benchmark:
        "results/benchmarks/source/{source}.tsv"
    priority: PREPARE_PRIORITY
    conda:
        "../../envs/llamabench.yaml"
    resources:
        bench_slot=1,
    params:
        source=lambda wildcards: canonical(config["sources"][wildcards.source]),
        tree_state=get_source_tree_state,
        version=get_rule_version("source"),
    message:
        "Fetching llama.cpp source '{wildcards.source}' ({params.source[kind]})"
    script:
        RULE_SCRIPT

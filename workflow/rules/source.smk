rule source:
    output:
        manifest="results/source/manifest.json",
    log:
        "results/logs/source.log",
    benchmark:
        "results/benchmarks/source.tsv"
    conda:
        "../../envs/llamabench.yaml"
    resources:
        bench_slot=1,
    params:
        source=canonical(config["source"]),
        tree_state=get_source_tree_state(),
        version=get_rule_version("source"),
    message:
        "Fetching the llama.cpp source ({params.source[kind]})"
    script:
        RULE_SCRIPT

rule fetch_source:
    output:
        manifest="results/source/manifest.json",
    log:
        "results/logs/fetch_source.log",
    conda:
        "../../envs/llamabench.yaml"
    resources:
        bench_slot=1,
    params:
        source=canonical(config["source"]),
        tree_state=source_tree_state(),
    message:
        "Fetching the llama.cpp source ({params.source[kind]})"
    script:
        "../scripts/fetch_source.py"

rule fetch_source:
    output:
        manifest="results/source/manifest.json",
    log:
        "results/logs/fetch_source.log",
    conda:
        "../../envs/llamabench.yaml"
    params:
        source=config["source"],
    message:
        "Fetching the llama.cpp source ({params.source[kind]})"
    script:
        "../scripts/fetch_source.py"

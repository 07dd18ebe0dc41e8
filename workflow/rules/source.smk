rule fetch_source:
    output:
        manifest="results/source/manifest.json",
    params:
        source=config["source"],
    log:
        "results/logs/fetch_source.log",
    message:
        "Fetching the llama.cpp source ({params.source[kind]})"
    script:
        "../scripts/fetch_source.py"

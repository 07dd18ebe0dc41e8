rule fetch_model:
    output:
        gguf="results/models/{model}/model.gguf",
        manifest="results/models/{model}/manifest.json",
    params:
        model=lambda wildcards: config["models"][wildcards.model],
    log:
        "results/logs/models/{model}.log",
    message:
        "Fetching model '{wildcards.model}'"
    script:
        "../scripts/fetch_model.py"

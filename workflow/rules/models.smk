rule fetch_model:
    output:
        gguf="results/models/{model}/model.gguf",
        manifest="results/models/{model}/manifest.json",
    log:
        "results/logs/models/{model}.log",
    conda:
        "../../envs/llamabench.yaml"
    params:
        model=lambda wildcards: config["models"][wildcards.model],
    message:
        "Fetching model '{wildcards.model}'"
    script:
        "../scripts/fetch_model.py"

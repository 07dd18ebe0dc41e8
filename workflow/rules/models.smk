rule fetch_model:
    output:
        gguf="results/models/{model}/model.gguf",
        manifest="results/models/{model}/manifest.json",
    log:
        "results/logs/models/{model}.log",
    conda:
        "../../envs/llamabench.yaml"
    resources:
        # hashing and parsing a multi-GB file must not run beside a measurement
        bench_slot=1,
    params:
        model=lambda wildcards: canonical(config["models"][wildcards.model]),
        file_state=model_file_state,
    message:
        "Fetching model '{wildcards.model}'"
    script:
        "../scripts/fetch_model.py"

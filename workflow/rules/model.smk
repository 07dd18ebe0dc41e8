rule model:
    input:
        unpack(get_model_inputs),
    output:
        gguf="results/models/{model}/model.gguf",
        manifest="results/models/{model}/manifest.json",
    log:
        "results/logs/model/{model}.log",
    benchmark:
        "results/benchmarks/model/{model}.tsv"
    priority: PREPARE_PRIORITY
    conda:
        "../../envs/llamabench.yaml"
    resources:
        # hashing and parsing a multi-GB file must not run beside a measurement
        bench_slot=1,
    params:
        model=lambda wildcards: canonical(config["models"][wildcards.model]),
        file_state=get_model_file_state,
        generator=get_model_generator,
        version=get_rule_version("model"),
    message:
        "Fetching model '{wildcards.model}'"
    script:
        RULE_SCRIPT

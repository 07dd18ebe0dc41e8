rule model:
    input:
        unpack(get_model_inputs),
    output:
        gguf=layout.pattern("model_file"),
        manifest=layout.pattern("model"),
    log:
        layout.log_pattern("model"),
    benchmark:
        layout.benchmark("model")
    priority: PREPARE_PRIORITY
    conda:
        "../../envs/llamabench.yaml"
    resources:
        # hashing and parsing a multi-GB file must not run beside a measurement
        bench_slot=1,
    params:
        model=lambda wildcards: plan.thaw(PLAN.models[wildcards.model]),
        file_state=get_model_file_state,
        generator=get_model_generator,
        version=get_rule_version("model"),
    message:
        "Fetching model '{wildcards.model}'"
    script:
        RULE_SCRIPT

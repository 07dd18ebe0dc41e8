# A load sweep's pilot on one build (llamabench/load_pilot.py): which rates the rounds measure.
checkpoint load_pilot:
    input:
        unpack(get_hardware_input),
        unpack(get_dataset_input),
        build=layout.pattern("build"),
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
    output:
        layout.pattern("load_pilot"),
    log:
        layout.log_pattern("load_pilot"),
    priority: plan.PREPARE_PRIORITY
    conda:
        "../../envs/llamabench.yaml"
    threads: lambda wildcards: PLAN.sweeps[wildcards.sweep].params["threads"]
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        # what the levels depend on: the sweep's settings and objectives
        sweep=lambda wildcards: plan.thaw(PLAN.sweeps[wildcards.sweep].params),
        settings=lambda wildcards: plan.thaw(
            PLAN.sweeps[wildcards.sweep].pilot_settings
        ),
        version=get_rule_version("load_pilot"),
    message:
        "Load pilot {wildcards.sweep}: {wildcards.build}/{wildcards.model}"
    script:
        RULE_SCRIPT

rule build:
    input:
        unpack(get_hardware_input),
        source=get_build_source,
    output:
        manifest=layout.pattern("build"),
        bin=directory(layout.pattern("build_bin")),
    log:
        layout.log_pattern("build"),
    benchmark:
        layout.benchmark("build")
    priority: PREPARE_PRIORITY
    conda:
        "../../envs/llamabench.yaml"
    threads: get_node_threads
    resources:
        **platform_resources(),
    params:
        cmake_options=lambda wildcards: list(PLAN.builds[wildcards.build].cmake_options),
        source=lambda wildcards: PLAN.builds[wildcards.build].source,
        # the devices its processes see, and whether a software GPU may be measured (core/backends.py)
        environment=lambda wildcards: PLAN.builds[wildcards.build].environment,
        software_device=lambda wildcards: PLAN.builds[wildcards.build].software_device,
        version=get_rule_version("build"),
    message:
        "Building llama.cpp variant '{wildcards.build}'"
    script:
        RULE_SCRIPT

rule build:
    input:
        unpack(get_hardware_input),
        source=get_build_source,
    output:
        manifest="results/builds/{build}/manifest.json",
        bin=directory("results/builds/{build}/bin"),
    log:
        "results/logs/build/{build}.log",
    benchmark:
        "results/benchmarks/build/{build}.tsv"
    priority: PREPARE_PRIORITY
    conda:
        "../../envs/llamabench.yaml"
    threads: get_node_threads
    resources:
        **platform_resources(),
    params:
        cmake_options=lookup(dpath="builds/{build}/cmake_options", within=config),
        source=lookup(dpath="builds/{build}/source", within=config),
        version=get_rule_version("build"),
    message:
        "Building llama.cpp variant '{wildcards.build}'"
    script:
        RULE_SCRIPT

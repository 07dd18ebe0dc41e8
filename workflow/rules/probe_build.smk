# One commit of a bisect or history study, built for its cells (llamabench/probe_build.py). A checkpoint: a
# commit that does not build is recorded (build_failed) and the study's next step skips it.
checkpoint probe_build:
    output:
        manifest=layout.pattern("probe_build"),
        bin=directory(layout.pattern("probe_bin")),
    log:
        layout.log_pattern("probe_build"),
    benchmark:
        layout.benchmark("probe_build")
    priority: PREPARE_PRIORITY
    conda:
        "../../envs/llamabench.yaml"
    threads: get_node_threads
    resources:
        **platform_resources(),
    params:
        url=lambda wildcards: PLAN.sources[wildcards.source]["url"],
        cmake_options=lambda wildcards: list(
            PLAN.config["builds"][wildcards.build]["cmake_options"]
        ),
        version=get_rule_version("probe_build"),
    message:
        "Building commit {wildcards.commit} of '{wildcards.source}' as '{wildcards.build}' (llama-bench)"
    script:
        RULE_SCRIPT

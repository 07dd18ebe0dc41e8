rule hardware:
    output:
        layout.pattern("hardware"),
    log:
        layout.log_pattern("hardware"),
    priority: PREPARE_PRIORITY
    conda:
        "../../envs/llamabench.yaml"
    resources:
        **platform_resources(exclusive=False),
        bench_slot=1,
    params:
        version=get_rule_version("hardware"),
    message:
        "What platform '{wildcards.platform}' has: nvcc and NVIDIA GPUs"
    script:
        RULE_SCRIPT

rule bandwidth:
    output:
        layout.pattern("bandwidth"),
    log:
        layout.log_pattern("bandwidth"),
    conda:
        "../../envs/llamabench.yaml"
    threads: get_node_threads
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        version=get_rule_version("bandwidth"),
    message:
        "Probing this machine's memory bandwidth"
    script:
        RULE_SCRIPT

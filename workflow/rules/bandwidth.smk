rule bandwidth:
    output:
        "results/bandwidth.json",
    log:
        "results/logs/bandwidth.log",
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

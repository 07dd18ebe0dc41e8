rule summary:
    input:
        cells=get_measured("bench_cell"),
    output:
        csv=layout.pattern("summary"),
        failed=layout.pattern("failed_cells"),
    log:
        layout.log_pattern("summary"),
    conda:
        "../../envs/llamabench.yaml"
    resources:
        bench_slot=1,
    params:
        max_share=PLAN.benchmark["disturbance"]["max_share"],
        version=get_rule_version("summary"),
    message:
        "Aggregating the benchmark cells"
    script:
        RULE_SCRIPT

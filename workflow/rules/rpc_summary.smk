rule rpc_summary:
    input:
        cells=get_measured("rpc_cell"),
    output:
        csv=layout.pattern("rpc_summary"),
        failed=layout.pattern("failed_rpc_cells"),
    log:
        layout.log_pattern("rpc_summary"),
    conda:
        "../../envs/llamabench.yaml"
    resources:
        bench_slot=1,
    params:
        max_share=PLAN.benchmark["disturbance"]["max_share"],
        version=get_rule_version("rpc_summary"),
    message:
        "Aggregating {n} RPC cells".format(n=len(PLAN.rpc))
    script:
        RULE_SCRIPT

rule rpc_summary:
    input:
        cells=get_files("rpc_cell"),
    output:
        csv=layout.pattern("rpc_summary"),
        failed=layout.pattern("failed_rpc_cells"),
    log:
        layout.log_pattern("rpc_summary"),
    conda:
        "../../envs/llamabench.yaml"
    params:
        version=get_rule_version("rpc_summary"),
    message:
        "Aggregating {n} RPC cells".format(n=len(PLAN.rpc))
    script:
        RULE_SCRIPT

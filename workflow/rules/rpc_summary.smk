rule rpc_summary:
    input:
        cells=get_rpc_cell_files(),
    output:
        csv="results/rpc_summary.csv",
        failed="results/failed_rpc_cells.txt",
    log:
        "results/logs/rpc_summary.log",
    conda:
        "../../envs/llamabench.yaml"
    params:
        version=get_rule_version("rpc_summary"),
    message:
        "Aggregating {n} RPC cells".format(n=len(RPC_CELLS))
    script:
        RULE_SCRIPT

rule summary:
    input:
        cells=get_cell_files(),
    output:
        csv="results/summary.csv",
        failed="results/failed_cells.txt",
    log:
        "results/logs/summary.log",
    conda:
        "../../envs/llamabench.yaml"
    params:
        version=get_rule_version("summary"),
    message:
        "Aggregating {n} benchmark cells".format(n=len(CELLS))
    script:
        RULE_SCRIPT

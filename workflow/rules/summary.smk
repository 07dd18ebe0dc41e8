rule summary:
    input:
        cells=get_measured_cell_files,
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
        "Aggregating the benchmark cells"
    script:
        RULE_SCRIPT

rule serving_summary:
    input:
        cells=get_serve_cell_files(),
        partners=list(get_serving_partners().values()),
    output:
        csv="results/serving_summary.csv",
        failed="results/failed_serving_cells.txt",
    log:
        "results/logs/serving_summary.log",
    conda:
        "../../envs/llamabench.yaml"
    params:
        partners=get_serving_partners(),
        min_requests=config["serving"]["min_requests"],
        version=get_rule_version("serving_summary"),
    message:
        "Aggregating {n} serving cells".format(n=len(SERVE_CELLS))
    script:
        RULE_SCRIPT

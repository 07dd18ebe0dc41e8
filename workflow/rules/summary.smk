rule summary:
    input:
        cells=get_measured_cell_files,
    output:
        csv=layout.pattern("summary"),
        failed=layout.pattern("failed_cells"),
    log:
        layout.log_pattern("summary"),
    conda:
        "../../envs/llamabench.yaml"
    params:
        version=get_rule_version("summary"),
    message:
        "Aggregating the benchmark cells"
    script:
        RULE_SCRIPT

checkpoint noisy:
    input:
        cells=get_cell_files(),
    output:
        "results/noisy.json",
    log:
        "results/logs/noisy.log",
    conda:
        "../../envs/llamabench.yaml"
    params:
        params={f"{b}/{m}/{c}": p for (b, m, c), p in BASE_CELLS.items()},
        version=get_rule_version("noisy"),
    message:
        "Finding noisy cells to measure again"
    script:
        RULE_SCRIPT

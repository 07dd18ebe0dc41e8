checkpoint noisy:
    input:
        cells=get_cell_files(),
    output:
        layout.pattern("noisy"),
    log:
        layout.log_pattern("noisy"),
    conda:
        "../../envs/llamabench.yaml"
    params:
        # what the decision depends on: changing one after a run decides again
        noisy_cv=PLAN.benchmark["noisy_cv"],
        max_rounds=PLAN.benchmark["remeasure"]["max_rounds"],
        defaults_cell=PLAN.defaults_cell,
        version=get_rule_version("noisy"),
    message:
        "Finding noisy cells to measure again"
    script:
        RULE_SCRIPT

checkpoint remeasure:
    input:
        bench_cell=get_planned("bench_cell"),
        serve_cell=get_planned("serve_cell"),
        rpc_cell=get_planned("rpc_cell"),
    output:
        layout.pattern("remeasure"),
    log:
        layout.log_pattern("remeasure"),
    conda:
        "../../envs/llamabench.yaml"
    resources:
        bench_slot=1,
    params:
        # what the decision depends on: changing one after a run decides again
        rounds=PLAN.rounds,
        enabled=PLAN.benchmark["remeasure"]["enabled"],
        noisy_cv=PLAN.benchmark["noisy_cv"],
        max_rounds=PLAN.benchmark["remeasure"]["max_rounds"],
        max_share=PLAN.benchmark["disturbance"]["max_share"],
        action=PLAN.benchmark["disturbance"]["action"],
        version=get_rule_version("remeasure"),
    message:
        "Deciding which cells to measure again (disturbed or noisy)"
    script:
        RULE_SCRIPT

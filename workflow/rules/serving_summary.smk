rule serving_summary:
    input:
        cells=get_measured("serve_cell"),
        partners=get_measured_serving_partners,
    output:
        csv=layout.pattern("serving_summary"),
        failed=layout.pattern("failed_serving_cells"),
        tokens=layout.pattern("serving_tokens"),
        turns=layout.pattern("serving_turns"),
    log:
        layout.log_pattern("serving_summary"),
    conda:
        "../../envs/llamabench.yaml"
    resources:
        bench_slot=1,
    params:
        partners=PLAN.serving_partners(),
        max_share=PLAN.benchmark["disturbance"]["max_share"],
        min_requests=plan.thaw(PLAN.config["serving"]["min_requests"]),
        version=get_rule_version("serving_summary"),
    message:
        "Aggregating {n} serving cells".format(n=len(PLAN.serving))
    script:
        RULE_SCRIPT

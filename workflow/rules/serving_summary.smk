rule serving_summary:
    input:
        cells=get_files("serve_cell"),
        partners=list(get_serving_partners().values()),
    output:
        csv=layout.pattern("serving_summary"),
        failed=layout.pattern("failed_serving_cells"),
    log:
        layout.log_pattern("serving_summary"),
    conda:
        "../../envs/llamabench.yaml"
    params:
        partners=get_serving_partners(),
        min_requests=plan.thaw(PLAN.config["serving"]["min_requests"]),
        version=get_rule_version("serving_summary"),
    message:
        "Aggregating {n} serving cells".format(n=len(PLAN.serving))
    script:
        RULE_SCRIPT

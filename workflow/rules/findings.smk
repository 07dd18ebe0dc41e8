rule findings:
    input:
        stats=layout.pattern("stats"),
        comparisons=layout.pattern("comparisons"),
        serving=layout.pattern("serving_summary"),
        rpc=layout.pattern("rpc_summary"),
    output:
        csv=layout.pattern("findings"),
        table_csv=layout.pattern("figures_table_csv"),
        table_md=report(
            layout.pattern("figures_table_md"),
            caption="../report/figures_table.rst",
            category="Best settings",
        ),
    log:
        layout.log_pattern("findings"),
    conda:
        "../../envs/llamabench.yaml"
    params:
        baseline=matrix.baseline(PLAN.benchmark),
        ttft_p90_limit_ms=PLAN.config["serving"]["ttft_p90_limit_ms"],
        version=get_rule_version("findings"),
    message:
        "Findings: every conclusion the report states"
    script:
        RULE_SCRIPT

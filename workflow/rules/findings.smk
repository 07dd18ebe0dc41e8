rule findings:
    input:
        stats=layout.pattern("stats"),
        comparisons=layout.pattern("comparisons"),
        metrics=layout.pattern("metrics"),
        serving=layout.pattern("serving_summary"),
        turns=layout.pattern("serving_turns"),
        memory=layout.pattern("memory_table"),
        quality=layout.pattern("quality_summary"),
        tune=[layout.path("tune", study=name) for name in PLAN.studies],
        load=[layout.path("load_sweep", sweep=name) for name in PLAN.sweeps],
        bisect=[layout.path("bisect_study", study=name) for name in PLAN.bisects],
        history=[layout.path("history_study", study=name) for name in PLAN.histories],
        builds=[layout.path("build", build=name) for name in PLAN.builds],
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
    # never beside a measurement: one job at a time on this machine (profiles/default)
    resources:
        bench_slot=1,
    params:
        baseline=matrix.baseline(PLAN.benchmark),
        ttft_p90_limit_ms=PLAN.config["serving"]["ttft_p90_limit_ms"],
        alpha=PLAN.benchmark["alpha"],
        action=PLAN.benchmark["disturbance"]["action"],
        version=get_rule_version("findings"),
    message:
        "Findings: every conclusion the report states"
    script:
        RULE_SCRIPT

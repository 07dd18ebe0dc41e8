rule report_html:
    input:
        csv=layout.pattern("summary"),
        stats=layout.pattern("stats"),
        comparisons=layout.pattern("comparisons"),
        bandwidth=layout.pattern("bandwidth"),
        serving=layout.pattern("serving_summary"),
        rpc=layout.pattern("rpc_summary"),
        rpc_smokes=[
            layout.path("rpc_smoke", topology=t, model=m) for t, m in PLAN.rpc_smokes
        ],
        findings=layout.pattern("findings"),
        metrics=layout.pattern("metrics"),
        memory=layout.pattern("memory_table"),
        memory_figure=layout.path("figure_png", name="memory"),
        quality=layout.pattern("quality_summary"),
        quality_figure=layout.pattern("quality_png"),
        tune=[layout.path("tune", study=name) for name in PLAN.studies],
        load=[layout.path("load_sweep", sweep=name) for name in PLAN.sweeps],
        bisect=[layout.path("bisect_study", study=name) for name in PLAN.bisects],
        history=[layout.path("history_study", study=name) for name in PLAN.histories],
        load_figures=[layout.path("load_png", sweep=name) for name in PLAN.sweeps],
        load_turn_figures=[
            layout.path("load_turns_png", sweep=name) for name in PLAN.sweeps
        ],
        bisect_figures=[layout.path("bisect_png", study=name) for name in PLAN.bisects],
        history_figures=[
            layout.path("history_png", study=name) for name in PLAN.histories
        ],
        figures=[layout.path("figure_png", name=name) for name in PLAN.figures],
        sources=[layout.path("source", source=name) for name in PLAN.sources],
        hardware=[layout.path("hardware", platform=name) for name in PLAN.platforms],
        builds=[layout.path("build", build=name) for name in PLAN.builds],
        models=[layout.path("model", model=name) for name in PLAN.models],
        smokes=[
            layout.path("smoke", build=b, model=m)
            for b in PLAN.builds
            for m in PLAN.models
        ],
    output:
        report(
            layout.pattern("report_html"),
            caption="../report/report_html.rst",
            category="Report",
        ),
    log:
        layout.log_pattern("report_html"),
    conda:
        "../../envs/llamabench.yaml"
    # never beside a measurement: one job at a time on this machine (profiles/default)
    resources:
        bench_slot=1,
    params:
        baseline=matrix.baseline(PLAN.benchmark),
        action=PLAN.benchmark["disturbance"]["action"],
        comparisons=list(PLAN.comparisons),
        version=get_rule_version("report_html"),
    message:
        "Writing results/report.html"
    script:
        RULE_SCRIPT

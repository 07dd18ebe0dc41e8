rule stats:
    input:
        csv=layout.pattern("summary"),
        serving=layout.pattern("serving_summary"),
        rpc=layout.pattern("rpc_summary"),
        bandwidth=layout.pattern("bandwidth"),
        models=[layout.path("model", model=name) for name in PLAN.models],
        load=[layout.path("load_sweep", sweep=name) for name in PLAN.sweeps],
        builds=[layout.path("build", build=name) for name in PLAN.builds],
    output:
        stats=layout.pattern("stats"),
        metrics=layout.pattern("metrics"),
        comparisons=layout.pattern("comparisons"),
    log:
        layout.log_pattern("stats"),
    conda:
        "../../envs/llamabench.yaml"
    # never beside a measurement: one job at a time on this machine (profiles/default)
    resources:
        bench_slot=1,
    params:
        baseline=matrix.baseline(PLAN.benchmark),
        alpha=PLAN.benchmark["alpha"],
        noisy_cv=PLAN.benchmark["noisy_cv"],
        action=PLAN.benchmark["disturbance"]["action"],
        serving_defaults=PLAN.serving_defaults_cell,
        comparisons=plan.thaw(PLAN.comparisons),
        version=get_rule_version("stats"),
    message:
        "Statistics over rounds, paired comparisons, roofline"
    script:
        RULE_SCRIPT

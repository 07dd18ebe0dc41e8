rule stats:
    input:
        csv=layout.pattern("summary"),
        bandwidth=layout.pattern("bandwidth"),
        models=[layout.path("model", model=name) for name in PLAN.models],
    output:
        stats=layout.pattern("stats"),
        comparisons=layout.pattern("comparisons"),
    log:
        layout.log_pattern("stats"),
    conda:
        "../../envs/llamabench.yaml"
    params:
        baseline=matrix.baseline(PLAN.benchmark),
        alpha=PLAN.benchmark["alpha"],
        noisy_cv=PLAN.benchmark["noisy_cv"],
        comparisons=plan.thaw(PLAN.comparisons),
        version=get_rule_version("stats"),
    message:
        "Statistics over rounds, paired comparisons, roofline"
    script:
        RULE_SCRIPT

rule figures:
    input:
        stats=layout.pattern("stats"),
        comparisons=layout.pattern("comparisons"),
        serving=layout.pattern("serving_summary"),
        turns=layout.pattern("serving_turns"),
        rpc=layout.pattern("rpc_summary"),
    output:
        **{
            f"{name}_png": report(
                layout.path("figure_png", name=name),
                caption="../report/figure.rst",
                category="Figures",
                labels={"figure": name},
            )
            for name in PLAN.figures
        },
        **{f"{name}_svg": layout.path("figure_svg", name=name) for name in PLAN.figures},
    log:
        layout.log_pattern("figures"),
    conda:
        "../../envs/llamabench.yaml"
    # never beside a measurement: one job at a time on this machine (profiles/default)
    resources:
        bench_slot=1,
    params:
        baseline=matrix.baseline(PLAN.benchmark),
        action=PLAN.benchmark["disturbance"]["action"],
        comparisons=list(PLAN.comparisons),
        version=get_rule_version("figures"),
    message:
        "Drawing figures"
    script:
        RULE_SCRIPT

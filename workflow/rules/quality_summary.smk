# Quality cost beside speed, the frontier marked (llamabench/quality_summary.py).
rule quality_summary:
    input:
        cells=[cell.path for cell in PLAN.quality.values()],
        comparisons=layout.pattern("comparisons"),
        stats=layout.pattern("stats"),
        memory=layout.pattern("memory_table"),
        builds=[layout.path("build", build=name) for name in PLAN.builds],
    output:
        csv=layout.pattern("quality_summary"),
        png=layout.pattern("quality_png"),
        svg=layout.pattern("quality_svg"),
    log:
        layout.log_pattern("quality_summary"),
    conda:
        "../../envs/llamabench.yaml"
    # never beside a measurement: one job at a time on this machine (profiles/default)
    resources:
        bench_slot=1,
    params:
        speed_cells={
            f"{key[0]}/{key[1]}/{key[2]}": list(cell.speed_cells)
            for key, cell in PLAN.quality.items()
        },
        reference=plan.thaw(quality.reference(PLAN.benchmark)),
        defaults_cell=PLAN.defaults_cell,
        alpha=PLAN.benchmark["alpha"],
        version=get_rule_version("quality_summary"),
    message:
        "Quality against speed: results/quality.csv"
    script:
        RULE_SCRIPT

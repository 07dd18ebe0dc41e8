# Predictions are made again here from the records: improving derive/memory.py rebuilds this table, and
# measures nothing again.
rule memory_table:
    input:
        cells=[cell.path for cell in PLAN.planned("bench_cell") if cell.round == 1],
        rpc=[cell.path for cell in PLAN.planned("rpc_cell") if cell.round == 1],
        models=[ancient(layout.path("model_file", model=name)) for name in PLAN.models],
    output:
        csv=layout.pattern("memory_table"),
        png=report(
            layout.path("figure_png", name="memory"),
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "memory"},
        ),
        svg=layout.path("figure_svg", name="memory"),
    log:
        layout.log_pattern("memory_table"),
    conda:
        "../../envs/llamabench.yaml"
    # never beside a measurement: one job at a time on this machine (profiles/default)
    resources:
        bench_slot=1,
    params:
        version=get_rule_version("memory_table"),
    message:
        "Memory: predicted against used"
    script:
        RULE_SCRIPT

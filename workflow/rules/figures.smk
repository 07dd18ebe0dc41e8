FIGURE_NAMES = (
    list(matrix.FIGURES)
    + list(matrix.SERVING_FIGURES)
    + list(matrix.RPC_FIGURES)
    + [f"comparison_{name}" for name in config["comparisons"]]
)


rule figures:
    input:
        stats="results/stats.csv",
        comparisons="results/comparisons.csv",
        serving="results/serving_summary.csv",
        rpc="results/rpc_summary.csv",
    output:
        **{
            f"{name}_png": report(
                f"results/figures/{name}.png",
                caption="../report/figure.rst",
                category="Figures",
                labels={"figure": name},
            )
            for name in FIGURE_NAMES
        },
        **{f"{name}_svg": f"results/figures/{name}.svg" for name in FIGURE_NAMES},
        table_csv="results/figures_table.csv",
        table_md=report(
            "results/figures_table.md",
            caption="../report/figures_table.rst",
            category="Best settings",
        ),
    log:
        "results/logs/figures.log",
    conda:
        "../../envs/llamabench.yaml"
    params:
        baseline=matrix.baseline(BENCH),
        ttft_p90_limit_ms=config["serving"]["ttft_p90_limit_ms"],
        comparisons=list(config["comparisons"]),
        version=get_rule_version("figures"),
    message:
        "Drawing figures and the best-settings table"
    script:
        RULE_SCRIPT

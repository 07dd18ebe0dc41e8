rule report_html:
    input:
        csv="results/summary.csv",
        stats="results/stats.csv",
        comparisons="results/comparisons.csv",
        bandwidth="results/bandwidth.json",
        serving="results/serving_summary.csv",
        rpc="results/rpc_summary.csv",
        rpc_smokes=expand(
            "results/rpc_smoke/{topology}/{model}.json",
            topology=list(config["rpc"]["topologies"]),
            model=config["rpc"]["models"] or MODELS,
        ),
        table="results/figures_table.csv",
        figures=expand("results/figures/{name}.png", name=FIGURE_NAMES),
        sources=expand("results/sources/{source}/manifest.json", source=SOURCES),
        hardware=expand(
            "results/hardware/{platform}.json", platform=list(config["platforms"])
        ),
        builds=expand("results/builds/{build}/manifest.json", build=BUILDS),
        models=expand("results/models/{model}/manifest.json", model=MODELS),
        smokes=expand("results/smoke/{build}/{model}.json", build=BUILDS, model=MODELS),
    output:
        report(
            "results/report.html",
            caption="../report/report_html.rst",
            category="Report",
        ),
    log:
        "results/logs/report_html.log",
    conda:
        "../../envs/llamabench.yaml"
    params:
        baseline=matrix.baseline(BENCH),
        comparisons=list(config["comparisons"]),
        version=get_rule_version("report_html"),
    message:
        "Writing results/report.html"
    script:
        RULE_SCRIPT

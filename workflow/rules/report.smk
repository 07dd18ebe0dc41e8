FIGURE_NAMES = list(matrix.FIGURES)


rule summarize:
    input:
        cells=cell_files(),
    output:
        csv="results/summary.csv",
        failed="results/failed_cells.txt",
    log:
        "results/logs/summarize.log",
    conda:
        "../../envs/llamabench.yaml"
    message:
        "Aggregating {n} benchmark cells".format(n=len(CELLS))
    script:
        "../scripts/summarize.py"


rule figures:
    input:
        csv="results/summary.csv",
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
    message:
        "Drawing figures and the best-settings table"
    script:
        "../scripts/figures.py"


rule report_html:
    input:
        csv="results/summary.csv",
        table="results/figures_table.csv",
        figures=expand("results/figures/{name}.png", name=FIGURE_NAMES),
        source="results/source/manifest.json",
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
    message:
        "Writing results/report.html"
    script:
        "../scripts/report_html.py"

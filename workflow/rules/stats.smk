rule stats:
    input:
        csv="results/summary.csv",
        bandwidth="results/bandwidth.json",
        models=expand("results/models/{model}/manifest.json", model=MODELS),
    output:
        stats="results/stats.csv",
        comparisons="results/comparisons.csv",
    log:
        "results/logs/stats.log",
    conda:
        "../../envs/llamabench.yaml"
    params:
        benchmark=canonical(BENCH),
        comparisons=canonical(config["comparisons"]),
        version=get_rule_version("stats"),
    message:
        "Statistics over rounds, paired comparisons, roofline"
    script:
        RULE_SCRIPT

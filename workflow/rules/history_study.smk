# A history study's series and its confirmed change points (llamabench/history_study.py), and a figure.
rule history_study:
    input:
        unpack(get_history_study_input),
    output:
        record=layout.pattern("history_study"),
        png=layout.pattern("history_png"),
        svg=layout.pattern("history_svg"),
    log:
        layout.log_pattern("history_study"),
    conda:
        "../../envs/llamabench.yaml"
    # never beside a measurement: one job at a time on this machine (profiles/default)
    resources:
        bench_slot=1,
    params:
        settings=lambda wildcards: plan.thaw(PLAN.histories[wildcards.study].settings),
        max_share=PLAN.benchmark["disturbance"]["max_share"],
        action=PLAN.benchmark["disturbance"]["action"],
        build=lambda wildcards: PLAN.histories[wildcards.study].build,
        models=lambda wildcards: list(PLAN.histories[wildcards.study].models),
        version=get_rule_version("history_study"),
    message:
        "History {wildcards.study}: the series and its change points"
    script:
        RULE_SCRIPT

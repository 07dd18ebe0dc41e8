# A bisect study's answer (llamabench/bisect_study.py): the path of probes, the culprit, the builds, a figure.
rule bisect_study:
    input:
        unpack(get_bisect_study_input),
    output:
        record=layout.pattern("bisect_study"),
        png=layout.pattern("bisect_png"),
        svg=layout.pattern("bisect_svg"),
    log:
        layout.log_pattern("bisect_study"),
    conda:
        "../../envs/llamabench.yaml"
    # never beside a measurement: one job at a time on this machine (profiles/default)
    resources:
        bench_slot=1,
    params:
        settings=lambda wildcards: plan.thaw(PLAN.bisects[wildcards.study].settings),
        build=lambda wildcards: PLAN.bisects[wildcards.study].build,
        models=lambda wildcards: list(PLAN.bisects[wildcards.study].models),
        version=get_rule_version("bisect_study"),
    message:
        "Bisect {wildcards.study}: the path and the culprit"
    script:
        RULE_SCRIPT

# A bisect study's decision after each measurement (llamabench/derive/bisect.py): the next probe, or the end.
checkpoint bisect_step:
    input:
        unpack(get_bisect_step_input),
    output:
        layout.pattern("bisect_step"),
    log:
        layout.log_pattern("bisect_step"),
    priority: plan.DECISION_PRIORITY
    conda:
        "../../envs/llamabench.yaml"
    # never beside a measurement: one job at a time on this machine (profiles/default)
    resources:
        bench_slot=1,
    params:
        settings=lambda wildcards: plan.thaw(PLAN.bisects[wildcards.study].settings),
        url=lambda wildcards: PLAN.bisects[wildcards.study].url,
        max_share=PLAN.benchmark["disturbance"]["max_share"],
        action=PLAN.benchmark["disturbance"]["action"],
        version=get_rule_version("bisect_step"),
    message:
        "Bisect {wildcards.study}: step {wildcards.step}"
    script:
        RULE_SCRIPT

# The commits of a history study (llamabench/history_range.py), from the source's history: a checkpoint.
checkpoint history_range:
    output:
        layout.pattern("history_range"),
    log:
        layout.log_pattern("history_range"),
    priority: PREPARE_PRIORITY
    conda:
        "../../envs/llamabench.yaml"
    params:
        settings=lambda wildcards: plan.thaw(PLAN.histories[wildcards.study].settings),
        url=lambda wildcards: PLAN.histories[wildcards.study].url,
        version=get_rule_version("history_range"),
    message:
        "History {wildcards.study}: its commits"
    script:
        RULE_SCRIPT

# A tuning study's answer: results/tune/<study>.json.
rule tune:
    input:
        unpack(get_tune_input),
    output:
        layout.pattern("tune"),
    log:
        layout.log_pattern("tune"),
    conda:
        "../../envs/llamabench.yaml"
    resources:
        bench_slot=1,
    params:
        max_share=PLAN.benchmark["disturbance"]["max_share"],
        action=PLAN.benchmark["disturbance"]["action"],
        version=get_rule_version("tune"),
    message:
        "Tuning {wildcards.study}: the answer"
    script:
        RULE_SCRIPT

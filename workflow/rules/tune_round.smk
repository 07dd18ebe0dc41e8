# A tuning study's decision after each round (llamabench/derive/race.py): what the next one measures.
checkpoint tune_round:
    input:
        unpack(get_tune_round_input),
    output:
        layout.pattern("tune_round"),
    log:
        layout.log_pattern("tune_round"),
    priority: plan.DECISION_PRIORITY
    conda:
        "../../envs/llamabench.yaml"
    # never beside a measurement: one job at a time on this machine (profiles/default)
    resources:
        bench_slot=1,
    params:
        # what the decisions depend on: changing one decides again (cheap), cells stay
        study=lambda wildcards: plan.thaw(PLAN.studies[wildcards.study].settings),
        candidates=lambda wildcards: [
            c.id for c in PLAN.studies[wildcards.study].candidates
        ],
        max_share=PLAN.benchmark["disturbance"]["max_share"],
        action=PLAN.benchmark["disturbance"]["action"],
        version=get_rule_version("tune_round"),
    message:
        "Tuning {wildcards.study} ({wildcards.build}/{wildcards.model}): decision after round {wildcards.round}"
    script:
        RULE_SCRIPT

# A load sweep's answer (llamabench/load_sweep.py): capacity per build with its interval, tokens, figure.
rule load_sweep:
    input:
        unpack(get_load_sweep_input),
    output:
        record=layout.pattern("load_sweep"),
        tokens=layout.pattern("load_tokens"),
        png=layout.pattern("load_png"),
        svg=layout.pattern("load_svg"),
        turns_png=layout.pattern("load_turns_png"),
        turns_svg=layout.pattern("load_turns_svg"),
    log:
        layout.log_pattern("load_sweep"),
    conda:
        "../../envs/llamabench.yaml"
    # never beside a measurement: one job at a time on this machine (profiles/default)
    resources:
        bench_slot=1,
    params:
        settings=lambda wildcards: plan.thaw(PLAN.sweeps[wildcards.sweep].settings),
        max_share=PLAN.benchmark["disturbance"]["max_share"],
        action=PLAN.benchmark["disturbance"]["action"],
        version=get_rule_version("load_sweep"),
    message:
        "Load {wildcards.sweep}: the largest load meeting the objectives"
    script:
        RULE_SCRIPT

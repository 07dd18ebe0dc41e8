# The text every quality cell scores: a user's file, or the first quality build's source docs (llamabench/quality_text.py).
rule quality_text:
    input:
        unpack(get_quality_text_input),
    output:
        record=layout.pattern("quality_text"),
        text=layout.pattern("quality_text_file"),
    log:
        layout.log_pattern("quality_text"),
    priority: PREPARE_PRIORITY
    conda:
        "../../envs/llamabench.yaml"
    params:
        text=PLAN.quality_spec["text"],
        source=PLAN.quality_text_source,
        version=get_rule_version("quality_text"),
    message:
        "Quality text: what every quality cell scores"
    script:
        RULE_SCRIPT

# One round of one tuning candidate (llamabench/tune_cell.py): a benchmark cell of the study's own.
rule tune_cell:
    input:
        unpack(get_hardware_input),
        build=layout.pattern("build"),
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
    output:
        layout.pattern("tune_cell"),
    log:
        layout.log_pattern("tune_cell"),
    priority: lambda wildcards: get_tune_cell(wildcards).priority
    conda:
        "../../envs/llamabench.yaml"
    threads: lambda wildcards: get_tune_cell(wildcards).params["threads"]
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        cell=lambda wildcards: plan.thaw(get_tune_cell(wildcards).params),
        round=lambda wildcards: get_tune_cell(wildcards).round,
        base_cell=lambda wildcards: get_tune_cell(wildcards).base,
        delay=PLAN.benchmark["delay"],
        version=get_rule_version("tune_cell"),
    message:
        "Tuning {wildcards.study}: {wildcards.build}/{wildcards.model}/{wildcards.cell}"
    script:
        RULE_SCRIPT

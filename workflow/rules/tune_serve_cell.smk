# One round of one candidate of a served-objective study (llamabench/tune_serve_cell.py): a serving cell.
rule tune_serve_cell:
    input:
        unpack(get_hardware_input),
        build=layout.pattern("build"),
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
    output:
        layout.pattern("tune_serve_cell"),
    log:
        layout.log_pattern("tune_serve_cell"),
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
        version=get_rule_version("tune_serve_cell"),
    message:
        "Tuning {wildcards.study}: {wildcards.build}/{wildcards.model}/{wildcards.cell}"
    script:
        RULE_SCRIPT

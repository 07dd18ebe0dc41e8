# One round of one level of a load sweep (llamabench/load_cell.py): a serving cell at an offered rate.
rule load_cell:
    input:
        unpack(get_hardware_input),
        unpack(get_dataset_input),
        build=layout.pattern("build"),
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
    output:
        layout.pattern("load_cell"),
    log:
        layout.log_pattern("load_cell"),
    priority: lambda wildcards: get_load_cell(wildcards).priority
    conda:
        "../../envs/llamabench.yaml"
    threads: lambda wildcards: get_load_cell(wildcards).params["threads"]
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        cell=lambda wildcards: plan.thaw(get_load_cell(wildcards).params),
        round=lambda wildcards: get_load_cell(wildcards).round,
        base_cell=lambda wildcards: get_load_cell(wildcards).base,
        version=get_rule_version("load_cell"),
    message:
        "Load {wildcards.sweep}: {wildcards.build}/{wildcards.model}/{wildcards.cell}"
    script:
        RULE_SCRIPT

# model.gguf is hard-linked from the shared cache, and other checkouts touch that
# inode: its mtime says nothing, so it is ancient() and the model record (sha256) decides.
rule serve_cell:
    input:
        unpack(get_hardware_input),
        unpack(get_dataset_input),
        build=layout.pattern("build"),
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
    output:
        layout.pattern("serve_cell"),
    log:
        layout.log_pattern("serve_cell"),
    priority: lambda wildcards: get_serve_cell(wildcards).priority
    conda:
        "../../envs/llamabench.yaml"
    threads: lambda wildcards: get_serve_cell(wildcards).params["threads"]
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        cell=lambda wildcards: plan.thaw(get_serve_cell(wildcards).params),
        round=lambda wildcards: get_serve_cell(wildcards).round,
        base_cell=lambda wildcards: get_serve_cell(wildcards).base,
        version=get_rule_version("serve_cell"),
    message:
        "Serving cell {wildcards.build}/{wildcards.model}/{wildcards.cell}"
    script:
        RULE_SCRIPT

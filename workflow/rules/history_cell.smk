# One round of one cell on one commit of a history study (llamabench/history_cell.py): a llama-bench cell.
rule history_cell:
    input:
        build=get_commit_build,
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
    output:
        layout.pattern("history_cell"),
    log:
        layout.log_pattern("history_cell"),
    priority: lambda wildcards: get_commit_cell(wildcards).priority
    conda:
        "../../envs/llamabench.yaml"
    threads: lambda wildcards: get_commit_cell(wildcards).params["threads"]
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        cell=lambda wildcards: plan.thaw(get_commit_cell(wildcards).params),
        round=lambda wildcards: get_commit_cell(wildcards).round,
        base_cell=lambda wildcards: get_commit_cell(wildcards).base,
        delay=PLAN.benchmark["delay"],
        version=get_rule_version("history_cell"),
    message:
        "History {wildcards.study}: {wildcards.commit}/{wildcards.model}/{wildcards.cell}"
    script:
        RULE_SCRIPT

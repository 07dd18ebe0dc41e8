# One round of one cell on one commit of a bisect probe (llamabench/bisect_cell.py): a llama-bench cell.
rule bisect_cell:
    input:
        build=get_commit_build,
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
    output:
        layout.pattern("bisect_cell"),
    log:
        layout.log_pattern("bisect_cell"),
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
        version=get_rule_version("bisect_cell"),
    message:
        "Bisect {wildcards.study}, probe {wildcards.probe}: {wildcards.commit}/{wildcards.model}/{wildcards.cell}"
    script:
        RULE_SCRIPT

# model.gguf is hard-linked from the shared cache, and other checkouts touch that
# inode: its mtime says nothing, so it is ancient() and the model record (sha256) decides.
rule smoke:
    input:
        build=layout.pattern("build"),
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
    output:
        layout.pattern("smoke"),
    log:
        layout.log_pattern("smoke"),
    conda:
        "../../envs/llamabench.yaml"
    threads: PLAN.smoke["threads"]
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        # its timeout is bookkeeping, read from the plan in the job: changing it reruns nothing
        smoke=plan.thaw(PLAN.smoke),
        version=get_rule_version("smoke"),
    message:
        "Smoke run: {wildcards.model} on build '{wildcards.build}'"
    script:
        RULE_SCRIPT

rule rpc_smoke:
    input:
        build=lambda wildcards: layout.path(
            "build", build=PLAN.topologies[wildcards.topology]["client"]
        ),
        worker_builds=get_rpc_worker_builds,
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
    output:
        layout.pattern("rpc_smoke"),
    log:
        layout.log_pattern("rpc_smoke"),
    conda:
        "../../envs/llamabench.yaml"
    threads: get_node_threads
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        topology=lambda wildcards: plan.thaw(PLAN.topologies[wildcards.topology]),
        smoke=plan.thaw(PLAN.smoke),
        version=get_rule_version("rpc_smoke"),
    message:
        "RPC smoke run: {wildcards.model} through topology '{wildcards.topology}'"
    script:
        RULE_SCRIPT

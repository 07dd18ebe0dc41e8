# model.gguf is hard-linked from the shared cache, and other checkouts touch that
# inode: its mtime says nothing, so it is ancient() and the model record (sha256) decides.
rule rpc_cell:
    input:
        unpack(get_hardware_input),
        build=layout.pattern("build"),
        worker_builds=get_rpc_worker_builds,
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
    output:
        layout.pattern("rpc_cell"),
    log:
        layout.log_pattern("rpc_cell"),
    priority: cell_priority("rpc_cell")
    conda:
        "../../envs/llamabench.yaml"
    # the client and every worker share this machine: the cell takes all of it
    threads: get_node_threads
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        **cell_params("rpc_cell"),
        rpc=lambda wildcards: plan.thaw(PLAN.cell_of("rpc_cell", wildcards).setup),
        version=get_rule_version("rpc_cell"),
    message:
        "RPC cell {wildcards.build}/{wildcards.model}/{wildcards.cell}"
    script:
        RULE_SCRIPT

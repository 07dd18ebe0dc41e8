# model.gguf is hard-linked from the shared cache, and other checkouts touch that
# inode: its mtime says nothing, so it is ancient() and the model record (sha256) decides.
rule rpc_cell:
    input:
        unpack(get_hardware_input),
        build="results/builds/{build}/manifest.json",
        worker_builds=get_rpc_worker_builds,
        model=ancient("results/models/{model}/model.gguf"),
        model_manifest="results/models/{model}/manifest.json",
    output:
        "results/rpc/{build}/{model}/{cell}.json",
    log:
        "results/logs/rpc_cell/{build}/{model}/{cell}.log",
    conda:
        "../../envs/llamabench.yaml"
    # the client and every worker share this machine: the cell takes all of it
    threads: get_node_threads
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        cell=lambda wildcards: get_rpc_cell(wildcards)["params"],
        rpc=lambda wildcards: canonical(get_rpc_cell(wildcards)["rpc"]),
        version=get_rule_version("rpc_cell"),
    message:
        "RPC cell {wildcards.build}/{wildcards.model}/{wildcards.cell}"
    script:
        RULE_SCRIPT

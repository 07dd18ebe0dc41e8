rule rpc_smoke:
    input:
        build=lambda wildcards: "results/builds/{}/manifest.json".format(
            config["rpc"]["topologies"][wildcards.topology]["client"]
        ),
        worker_builds=lambda wildcards: [
            f"results/builds/{w['build']}/manifest.json"
            for w in config["rpc"]["topologies"][wildcards.topology]["workers"]
            if "build" in w
        ],
        model=ancient("results/models/{model}/model.gguf"),
        model_manifest="results/models/{model}/manifest.json",
    output:
        "results/rpc_smoke/{topology}/{model}.json",
    log:
        "results/logs/rpc_smoke/{topology}/{model}.log",
    conda:
        "../../envs/llamabench.yaml"
    threads: get_node_threads
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        topology=lambda wildcards: canonical(
            config["rpc"]["topologies"][wildcards.topology]
        ),
        smoke=canonical({k: v for k, v in config["smoke"].items() if k != "timeout"}),
        version=get_rule_version("rpc_smoke"),
    message:
        "RPC smoke run: {wildcards.model} through topology '{wildcards.topology}'"
    script:
        RULE_SCRIPT

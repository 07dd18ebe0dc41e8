# model.gguf is hard-linked from the shared cache, and other checkouts touch that
# inode: its mtime says nothing, so it is ancient() and the model record (sha256) decides.
rule smoke:
    input:
        build="results/builds/{build}/manifest.json",
        model=ancient("results/models/{model}/model.gguf"),
        model_manifest="results/models/{model}/manifest.json",
    output:
        "results/smoke/{build}/{model}.json",
    log:
        "results/logs/smoke/{build}/{model}.log",
    conda:
        "../../envs/llamabench.yaml"
    threads: config["smoke"]["threads"]
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        # timeout is read from the config in the step: changing it must not rerun anything.
        smoke=canonical({k: v for k, v in config["smoke"].items() if k != "timeout"}),
        version=get_rule_version("smoke"),
    message:
        "Smoke run: {wildcards.model} on build '{wildcards.build}'"
    script:
        RULE_SCRIPT

# model.gguf is hard-linked from the shared cache, and other checkouts touch that
# inode: its mtime says nothing, so it is ancient() and the model record (sha256) decides.
rule bench_cell:
    input:
        unpack(get_hardware_input),
        build="results/builds/{build}/manifest.json",
        model=ancient("results/models/{model}/model.gguf"),
        model_manifest="results/models/{model}/manifest.json",
    output:
        "results/cells/{build}/{model}/{cell}.json",
    log:
        "results/logs/bench_cell/{build}/{model}/{cell}.log",
    priority: get_cell_priority
    conda:
        "../../envs/llamabench.yaml"
    threads: get_cell_threads
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        cell=lambda wildcards: get_cell(wildcards)["params"],
        round=lambda wildcards: get_cell(wildcards)["round"],
        base_cell=lambda wildcards: get_cell(wildcards)["base"],
        delay=BENCH["delay"],
        version=get_rule_version("bench_cell"),
    message:
        "Benchmark cell {wildcards.build}/{wildcards.model}/{wildcards.cell}"
    script:
        RULE_SCRIPT

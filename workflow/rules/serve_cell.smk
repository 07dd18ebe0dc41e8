# model.gguf is hard-linked from the shared cache, and other checkouts touch that
# inode: its mtime says nothing, so it is ancient() and the model record (sha256) decides.
rule serve_cell:
    input:
        unpack(get_hardware_input),
        build="results/builds/{build}/manifest.json",
        model=ancient("results/models/{model}/model.gguf"),
        model_manifest="results/models/{model}/manifest.json",
    output:
        "results/serving/{build}/{model}/{cell}.json",
    log:
        "results/logs/serve_cell/{build}/{model}/{cell}.log",
    conda:
        "../../envs/llamabench.yaml"
    threads: get_serve_cell_threads
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        cell=get_serve_cell_params,
        version=get_rule_version("serve_cell"),
    message:
        "Serving cell {wildcards.build}/{wildcards.model}/{wildcards.cell}"
    script:
        RULE_SCRIPT

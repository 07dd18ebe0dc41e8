# model.gguf is hard-linked from the shared cache, and other checkouts touch that
# inode: its mtime says nothing, so it is ancient() and the manifest (sha256) decides.
rule bench_cell:
    input:
        build="results/builds/{build}/manifest.json",
        model=ancient("results/models/{model}/model.gguf"),
        model_manifest="results/models/{model}/manifest.json",
    output:
        "results/cells/{build}/{model}/{cell}.json",
    log:
        "results/logs/cells/{build}/{model}/{cell}.log",
    conda:
        "../../envs/llamabench.yaml"
    threads: cell_threads
    resources:
        bench_slot=1,
    params:
        cell=cell_params,
        delay=BENCH["delay"],
    message:
        "Benchmark cell {wildcards.build}/{wildcards.model}/{wildcards.cell}"
    script:
        "../scripts/bench_cell.py"

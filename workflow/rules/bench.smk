rule bench_cell:
    input:
        build="results/builds/{build}/manifest.json",
        model="results/models/{model}/model.gguf",
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
        timeout=BENCH["timeout"],
    message:
        "Benchmark cell {wildcards.build}/{wildcards.model}/{wildcards.cell}"
    script:
        "../scripts/bench_cell.py"

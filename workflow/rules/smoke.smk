rule smoke:
    input:
        build="results/builds/{build}/manifest.json",
        model="results/models/{model}/model.gguf",
    output:
        "results/smoke/{build}/{model}.json",
    log:
        "results/logs/smoke/{build}/{model}.log",
    conda:
        "../../envs/llamabench.yaml"
    threads: config["smoke"]["threads"]
    resources:
        bench_slot=1,
    params:
        smoke=config["smoke"],
    message:
        "Smoke run: {wildcards.model} on build '{wildcards.build}'"
    script:
        "../scripts/smoke.py"

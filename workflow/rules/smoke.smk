rule smoke:
    input:
        build="results/builds/{build}/manifest.json",
        model="results/models/{model}/model.gguf",
    output:
        "results/smoke/{build}/{model}.json",
    params:
        smoke=config["smoke"],
    threads: config["smoke"]["threads"]
    resources:
        bench_slot=1,
    log:
        "results/logs/smoke/{build}/{model}.log",
    message:
        "Smoke run: {wildcards.model} on build '{wildcards.build}'"
    script:
        "../scripts/smoke.py"

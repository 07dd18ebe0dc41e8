rule build:
    input:
        source="results/source/manifest.json",
    output:
        manifest="results/builds/{build}/manifest.json",
        bin=directory("results/builds/{build}/bin"),
    log:
        "results/logs/build/{build}.log",
    conda:
        "../../envs/llamabench.yaml"
    threads: workflow.cores
    params:
        cmake_options=lambda wildcards: config["builds"][wildcards.build][
            "cmake_options"
        ],
    message:
        "Building llama.cpp variant '{wildcards.build}'"
    script:
        "../scripts/build.py"

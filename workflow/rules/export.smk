rule export:
    input:
        cells=get_measured_cell_files,
    output:
        jsonl="results/llama-bench.jsonl",
        sqlite="results/llama-bench.sqlite",
        builds_sqlite="results/llama-bench-builds.sqlite",
    log:
        "results/logs/export.log",
    conda:
        "../../envs/llamabench.yaml"
    params:
        version=get_rule_version("export"),
    message:
        "Exporting llama-bench records (JSONL, SQLite) for llama.cpp's own tools"
    script:
        RULE_SCRIPT

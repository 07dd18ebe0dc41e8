rule export:
    input:
        cells=get_measured("bench_cell"),
    output:
        jsonl=layout.pattern("export_jsonl"),
        sqlite=layout.pattern("export_sqlite"),
        builds_sqlite=layout.pattern("export_builds_sqlite"),
    log:
        layout.log_pattern("export"),
    conda:
        "../../envs/llamabench.yaml"
    resources:
        bench_slot=1,
    params:
        version=get_rule_version("export"),
    message:
        "Exporting llama-bench records (JSONL, SQLite) for llama.cpp's own tools"
    script:
        RULE_SCRIPT

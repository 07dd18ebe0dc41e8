# A build's llama-perplexity (quality cells): among its binaries, or, for a build cached before quality cells
# existed, compiled once beside its cache entry with the same options (llamabench/perplexity_build.py): the build
# and its record stay as they are, so nothing measured with it runs again.
rule perplexity_build:
    input:
        build=layout.pattern("build"),
        source=get_build_source,
    output:
        layout.pattern("perplexity_build"),
    log:
        layout.log_pattern("perplexity_build"),
    priority: PREPARE_PRIORITY
    conda:
        "../../envs/llamabench.yaml"
    threads: get_node_threads
    resources:
        **platform_resources(),
    params:
        version=get_rule_version("perplexity_build"),
    message:
        "llama-perplexity of build '{wildcards.build}'"
    script:
        RULE_SCRIPT

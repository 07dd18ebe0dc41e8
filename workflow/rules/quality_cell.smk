# One setting's quality cost: llama-perplexity's KL divergence from its reference's logits (llamabench/quality_cell.py).
# model.gguf is hard-linked from the shared cache (its mtime says nothing: the model record decides). The logits are
# no input: they lie beside the reference's record until quality_summary deletes them, and a cell that finds them
# gone makes them again by the reference's recorded command (its model file and the text are inputs for that).
rule quality_cell:
    input:
        unpack(get_quality_reference),
        build=layout.pattern("build"),
        tool=layout.pattern("perplexity_build"),
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
        text=layout.pattern("quality_text"),
        text_file=layout.pattern("quality_text_file"),
    output:
        record=layout.pattern("quality_cell"),
    log:
        layout.log_pattern("quality_cell"),
    conda:
        "../../envs/llamabench.yaml"
    threads: PLAN.quality_spec["threads"]
    resources:
        **platform_resources(),
        bench_slot=1,
    params:
        cell=lambda wildcards: plan.thaw(
            PLAN.quality_cell(wildcards.build, wildcards.model, wildcards.cell).params
        ),
        ctx_size=PLAN.quality_spec["ctx_size"],
        chunks=PLAN.quality_spec["chunks"],
        version=get_rule_version("quality_cell"),
    message:
        "Quality: {wildcards.build}/{wildcards.model}/{wildcards.cell} against its reference"
    script:
        RULE_SCRIPT


# The reference's run: it scores the text with the reference settings and keeps every scored token's
# distribution beside its record, deleted by quality_summary once every quality cell has read it.
use rule quality_cell as quality_reference with:
    input:
        build=layout.pattern("build"),
        tool=layout.pattern("perplexity_build"),
        model=ancient(layout.pattern("model_file")),
        model_manifest=layout.pattern("model"),
        text=layout.pattern("quality_text"),
        text_file=layout.pattern("quality_text_file"),
    output:
        record=layout.pattern("quality_reference"),
    log:
        layout.log_pattern("quality_reference"),
    params:
        cell=lambda wildcards: plan.thaw(
            PLAN.quality_cell(wildcards.build, wildcards.model).params
        ),
        ctx_size=PLAN.quality_spec["ctx_size"],
        chunks=PLAN.quality_spec["chunks"],
        version=get_rule_version("quality_reference"),
    message:
        "Quality reference: {wildcards.build}/{wildcards.model}, its logits over the text"

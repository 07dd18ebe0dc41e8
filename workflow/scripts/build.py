"""Snakemake entry point of rule build; the logic is llamabench.steps.build_variant."""

from llamabench.entry import run
from llamabench.steps import build_variant

run(snakemake, build_variant)  # noqa: F821 (snakemake is injected by the script directive)

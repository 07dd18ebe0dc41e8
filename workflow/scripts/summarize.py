"""Snakemake entry point of rule summarize; the logic is llamabench.steps.summarize."""

from llamabench.entry import run
from llamabench.steps import summarize

run(snakemake, summarize)  # noqa: F821 (snakemake is injected by the script directive)

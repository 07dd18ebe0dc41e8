"""Snakemake entry point of rule smoke; the logic is llamabench.steps.smoke_run."""

from llamabench.entry import run
from llamabench.steps import smoke_run

run(snakemake, smoke_run)  # noqa: F821 (snakemake is injected by the script directive)

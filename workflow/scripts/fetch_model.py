"""Snakemake entry point of rule fetch_model; the logic is llamabench.steps.fetch_model."""

from llamabench.entry import run
from llamabench.steps import fetch_model

run(snakemake, fetch_model)  # noqa: F821 (snakemake is injected by the script directive)

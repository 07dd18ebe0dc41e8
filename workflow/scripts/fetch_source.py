"""Snakemake entry point of rule fetch_source; the logic is llamabench.steps.fetch_source."""

from llamabench.entry import run
from llamabench.steps import fetch_source

run(snakemake, fetch_source)  # noqa: F821 (snakemake is injected by the script directive)

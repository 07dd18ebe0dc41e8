"""Snakemake entry point of rule report_html; the logic is llamabench.steps.write_report."""

from llamabench.entry import run
from llamabench.steps import write_report

run(snakemake, write_report)  # noqa: F821 (snakemake is injected by the script directive)

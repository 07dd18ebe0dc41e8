"""Snakemake entry point of rule figures; the logic is llamabench.steps.plot_figures."""

from llamabench.entry import run
from llamabench.steps import plot_figures

run(snakemake, plot_figures)  # noqa: F821 (snakemake is injected by the script directive)

"""Snakemake entry point of rule bench_cell; the logic is llamabench.steps.bench_cell."""

from llamabench.entry import run
from llamabench.steps import bench_cell

run(snakemake, bench_cell)  # noqa: F821 (snakemake is injected by the script directive)

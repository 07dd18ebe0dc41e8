"""The Snakemake entry point of every rule: runs llamabench.<rule>.<rule>(snakemake).

One dispatcher instead of a script per rule, so a rule's name leads straight to
its module and function. Rules rerun on code changes through their ``version``
param (llamabench/code_version.py), not through this file.
"""

from llamabench.entry import run_rule

run_rule(snakemake)  # noqa: F821 (snakemake is injected by the script directive)

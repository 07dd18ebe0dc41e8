"""Logic of the llama.cpp deployment-and-benchmark workflow.

The Snakemake rules stay thin: each calls one entry point of this package
through a script in ``workflow/scripts``, so every piece here can be imported
and tested without Snakemake.
"""

__version__ = "0.1.0"

"""Glue between a Snakemake ``script:`` and this package.

Each script in ``workflow/scripts`` is one line: ``run(snakemake, step)``.
Here the rule's log is opened, and a :class:`UserError` becomes one clear
sentence on the console and in the log, instead of a traceback.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from llamabench.errors import UserError


def run(smk: Any, step: Callable[[Any], None]) -> None:
    log_path = smk.log[0]
    open(log_path, "w").close()
    # Append mode: child processes (cmake, llama-bench) stream into the same file.
    logging.basicConfig(
        filename=log_path,
        filemode="a",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        force=True,
    )
    # SIGTERM (Snakemake stopping a job, Ctrl-C) becomes an exception, so that the
    # steps' cleanup runs and no child llama.cpp process outlives its job.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        step(smk)
    except UserError as err:
        logging.error("%s", err)
        print(f"llamabench: {err} (log: {log_path})", file=sys.stderr)
        sys.exit(1)
    except Exception:
        logging.exception("step failed")
        raise


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)

"""Glue between Snakemake and this package.

Every rule's ``script:`` is ``workflow/scripts/rule.py``, which calls
:func:`run_rule`: the rule ``X`` runs the function ``llamabench.X.X(snakemake)``,
and a variant of a measuring program's rule (``use rule bench_cell as tune_cell``)
its program's (``llamabench.bench_cell.bench_cell``: core/code_version.py's ``module_of``).
Here the rule's log is opened, SIGTERM becomes an exception so that cleanup
code runs, and a :class:`UserError` becomes one clear sentence on the console
and in the log instead of a traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from llamabench.core import records
from llamabench.core.code_version import module_of
from llamabench.core.errors import UserError
from llamabench.core.status import Status

log = logging.getLogger(__name__)


def run_rule(smk: Any) -> None:
    name = module_of(smk.rule)
    run_step(smk, getattr(importlib.import_module(f"llamabench.{name}"), name))


def run_step(smk: Any, step: Callable[[Any], Any]) -> None:
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
    # SIGTERM (how a job is stopped) becomes an exception, so that the steps'
    # cleanup runs and no child llama.cpp process outlives its job.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        apply_environment(smk)
        step(smk)
    except UserError as err:
        logging.error("%s", err)
        print(f"llamabench: {err} (log: {log_path})", file=sys.stderr)
        sys.exit(1)
    except Exception:
        logging.exception("step failed")
        raise


def apply_environment(smk: Any) -> None:
    """A job that runs a build's binaries runs them with the build's environment (the GPU devices its backend is to
    see, core/backends.py): set here once, for every rule that reads a build record, and inherited by every process
    the job starts."""
    inputs = getattr(smk, "input", None)  # a step run by hand (a test) may have none
    if inputs is not None and "build" in inputs.keys():
        os.environ.update((records.read_build(inputs.build) or {}).get("environment") or {})


def announce_failure(what: str, result: dict[str, Any]) -> None:
    """A recorded failure lets the job succeed, so say it on the console and in the log."""
    if result["status"] != Status.OK:
        log.warning("%s %s: %s", what, result["status"], result["error"])
        print(f"llamabench: {what} {result['status']}: {result['error']}")


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)

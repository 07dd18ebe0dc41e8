"""What became of a job's work: one vocabulary for every record and table.

A status is data, not an exception: a cell that failed, could not run here or
ran out of memory still has its record, and the report lists it. Which statuses
count as failures (listed in ``results/failed_*cells.txt`` for a forced rerun)
and which are expected outcomes is decided here, once.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"
    # This tree's tool cannot express the cell (a flag its version lacks), or the host lacks what it needs.
    SKIPPED = "skipped"
    # llama.cpp's log says an allocation failed: an expected outcome of a sweep (too many layers on the GPU,
    # too long a context), which a rerun would not change.
    OUT_OF_MEMORY = "out_of_memory"
    # The memory prediction says the cell cannot fit: it was not started.
    PREDICTED_OUT_OF_MEMORY = "predicted_out_of_memory"
    # Something else used the machine while the cell measured, beyond the configured share.
    DISTURBED = "disturbed"
    # Left out of a study (a tuning candidate significantly worse than the best, a round disturbed and dropped).
    DROPPED = "dropped"
    # The commit did not build: a study skips it (like git bisect skip).
    BUILD_FAILED = "build_failed"
    # A record of another kind or version, or no valid record at all.
    UNREADABLE = "unreadable"

    @property
    def is_failure(self) -> bool:
        """Whether a rerun may change it: listed for ``snakemake --forcerun $(cat results/failed_*cells.txt)``."""
        return self in FAILURES

    @property
    def measured(self) -> bool:
        return self in (Status.OK, Status.DISTURBED)


FAILURES = frozenset({Status.FAILED, Status.UNREADABLE})
# Outcomes a run expects, listed apart from failures.
EXPECTED = frozenset({Status.SKIPPED, Status.OUT_OF_MEMORY, Status.PREDICTED_OUT_OF_MEMORY, Status.DROPPED,
                      Status.BUILD_FAILED})


def values() -> list[str]:
    return [status.value for status in Status]

"""Snakemake logger plugin ``llamabench``: the run's remaining time, from the job durations recorded here.

Snakemake says "12 of 40 steps (30%) done"; someone waiting on a run of builds
and measurements wants "about 9 min left". This handler sits beside Snakemake's
own console output (it does not replace it): it records how long each finished
job took, per rule, in ``.snakemake/llamabench/job-seconds.json`` of the working
directory (the last ``KEEP`` of each rule, so later runs estimate from earlier
ones), and prints the estimate when the run starts and then on progress, at most
every ``INTERVAL_S`` seconds unless a tenth more of the run is done. The estimate
is each job still to run at its rule's median recorded duration, less what a
running job has already spent, summed: this workflow's measurements run one at a
time and its builds take every core, so the jobs that take long do not overlap.
Jobs of rules never timed here, and jobs a checkpoint added whose rule is not
known until they start, are counted, not guessed.
"""

from __future__ import annotations

import json
import os
import logging
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent

STORE = Path(".snakemake") / "llamabench" / "job-seconds.json"
KEEP = 20
INTERVAL_S = 10.0
STEP = 0.1


def remaining(planned: Mapping[str, int], done: Mapping[str, int], running: Mapping[str, list[float]],
              recorded: Mapping[str, list[float]]) -> tuple[float, int]:
    """(seconds left, jobs left whose rule has no recorded duration).

    ``planned``: jobs per rule in the run; ``done``: finished (or failed) per rule; ``running``: the seconds each
    running job has spent so far, per rule; ``recorded``: durations recorded per rule.
    """
    seconds, untimed = 0.0, 0
    for rule, count in planned.items():
        spent = running.get(rule, [])
        waiting = max(0, count - done.get(rule, 0) - len(spent))
        if not recorded.get(rule):
            untimed += waiting + len(spent)
            continue
        typical = statistics.median(recorded[rule])
        seconds += waiting * typical + sum(max(0.0, typical - s) for s in spent)
    return seconds, untimed


def say(seconds: float, untimed: int, finished: int, total: int, dry: bool = False) -> str:
    """One console line: jobs done, the time left, the jobs it leaves out (a dry run: what the jobs would take)."""
    head = f"llamabench: run: {total} jobs" if dry else f"llamabench: run: {finished}/{total} jobs done"
    if not seconds and untimed:
        return f"{head}; the time {'they take' if dry else 'left'} is not known yet ({untimed} job(s) of unknown " \
               "duration)"
    amount = f"about {seconds / 60:.0f} min" if seconds >= 90 else f"about {seconds:.0f} s"
    return f"{head}, {amount} {'by the durations recorded here' if dry else 'left'}" + (
        f", plus {untimed} job(s) of unknown duration" if untimed else "")


class LogHandler(LogHandlerBase):
    """Records job durations and prints the run's remaining time (see the module's docstring)."""

    def __post_init__(self) -> None:
        self.planned: Counter[str] = Counter()
        self.done: Counter[str] = Counter()
        self.rule_of: dict[int, str] = {}
        self.started: dict[int, float] = {}
        self.recorded: dict[str, list[float]] | None = None
        self.total = 0
        self.last_time: float | None = None
        self.last_share = 0.0
        self.last_line = ""

    @property
    def writes_to_stream(self) -> bool:
        return False  # Snakemake keeps its own console handler; this one adds a line now and then

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True  # durations are recorded whatever --quiet says; only the printing follows it

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        if event == LogEvent.RUN_INFO:
            stats = dict(record.stats)
            self.total = int(stats.pop("total", sum(stats.values())))
            self.planned = Counter({rule: int(n) for rule, n in stats.items()})
            self.show(force=True)
        elif event == LogEvent.JOB_INFO and not self.common_settings.dryrun:
            self.rule_of[record.jobid] = record.rule_name
            self.started[record.jobid] = record.created
            rule = record.rule_name  # a checkpoint's new jobs were not in the plan
            self.planned[rule] = max(self.planned[rule], self.done[rule] + self.running().get(rule, 0))
        elif event in (LogEvent.JOB_FINISHED, LogEvent.JOB_ERROR):
            jobid = getattr(record, "job_id", getattr(record, "jobid", None))
            rule, start = self.rule_of.get(jobid), self.started.pop(jobid, None)
            if rule is not None and start is not None:
                self.done[rule] += 1
                if event == LogEvent.JOB_FINISHED:
                    self.record(rule, record.created - start)
        elif event == LogEvent.PROGRESS:
            self.total = max(self.total, int(record.total))
            self.show(finished=int(record.done))

    def running(self) -> Counter[str]:
        return Counter(self.rule_of[jobid] for jobid in self.started)

    def durations(self) -> dict[str, list[float]]:
        if self.recorded is None:
            try:
                self.recorded = {rule: [float(s) for s in seconds]
                                 for rule, seconds in json.loads(STORE.read_text()).items()}
            except (OSError, ValueError, AttributeError):
                self.recorded = {}
        return self.recorded

    def record(self, rule: str, seconds: float) -> None:
        """Keep the duration, written whole (a temporary file renamed) so a killed run leaves the old file."""
        recorded = self.durations()
        recorded[rule] = [*recorded.get(rule, []), round(seconds, 2)][-KEEP:]
        try:
            STORE.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=STORE.parent, prefix=".job-seconds.")
            with os.fdopen(fd, "w") as f:
                json.dump(recorded, f)
            os.replace(tmp, STORE)
        except OSError:
            pass  # an estimate is a convenience: a read-only directory costs only future estimates

    def show(self, finished: int | None = None, force: bool = False) -> None:
        quiet = {getattr(q, "name", str(q)).lower() for q in (self.common_settings.quiet or ())}
        if quiet & {"all", "progress"} or not self.total:
            return
        finished = sum(self.done.values()) if finished is None else finished
        share, now = finished / self.total, time.monotonic()
        if not force and self.last_time is not None and now - self.last_time < INTERVAL_S and \
                share - self.last_share < STEP:
            return
        wall = time.time()
        running: dict[str, list[float]] = {}
        for jobid, start in self.started.items():
            running.setdefault(self.rule_of[jobid], []).append(wall - start)
        seconds, untimed = remaining(self.planned, self.done, running, self.durations())
        # jobs a checkpoint added are in the total before their rule is known (until they start): not timed either
        planned_left = sum(max(0, n - self.done[rule]) for rule, n in self.planned.items())
        untimed += max(0, self.total - finished - planned_left)
        line = say(seconds, untimed, finished, self.total, dry=self.common_settings.dryrun)
        if finished >= self.total or line == self.last_line:
            return
        # Through Snakemake's logger, so its console handler writes the line whole between its own (printing
        # from this thread would interleave); the record comes back here without an event and is ignored.
        logging.getLogger("snakemake.logging").info(line)
        self.last_time, self.last_share, self.last_line = now, share, line

"""Results of earlier versions of a build: kept by commit, read by the aggregates, made by no job.

Cell ids name parameters, not versions, so a build whose source changes would
otherwise overwrite its cells. Instead, when the build rule has produced a
build of another commit, it moves that build's cell records (benchmark,
serving, RPC) and their logs to ``results/history/<build>@<commit>/``. The
summaries (and the export) find them when they run — only a build job moves
records, and its cells, hence the summaries, run after it — and read them
beside the current cells, under that label, so a
comparison can name ``cpu@0c1e570`` as its baseline after ``cpu`` moved on.
A cell whose commit is unchanged stays where it is (and is measured again
only if something else about it changed).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from llamabench.core import layout, records

log = logging.getLogger(__name__)

COMMIT_LENGTH = 7


def label(build: str, commit: str) -> str:
    """``cpu@0c1e570``: the build's name and the commit its kept results were measured with."""
    return f"{build}@{commit[:COMMIT_LENGTH]}"


def archive(results: Path, build: str, commit: str | None) -> list[Path]:
    """Move ``build``'s records of any other commit into the history; returns where they went."""
    moved = []
    for kind, directory in layout.CELL_DIRS.items():
        for path in sorted((layout.cell_dir(kind, results) / build).glob("*/*.json")):
            old = _commit(path)
            if not old or not commit or old == commit:
                continue
            kept = layout.kept_dir(label(build, old), results)
            target = kept / directory / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            log_path = Path(layout.log(kind, results, build=build, model=path.parent.name, cell=path.stem))
            if log_path.exists():
                log_target = kept / "logs" / kind / path.parent.name / log_path.name
                log_target.parent.mkdir(parents=True, exist_ok=True)
                log_path.replace(log_target)
            path.replace(target)  # a rename: the record is either here or there, never half
            moved.append(target)
    if moved:
        log.info("kept %d records of earlier commits of build '%s' under %s/", len(moved), build,
                 results / layout.HISTORY)
    return moved


def _commit(path: Path) -> str | None:
    """The build commit a record was measured with (read raw: records of any version are kept)."""
    try:
        return json.loads(path.read_text()).get("build", {}).get("commit")
    except (OSError, ValueError, AttributeError):
        return None


def labels(results: Path) -> list[str]:
    """The versions kept, as comparisons name them."""
    return sorted(p.name for p in (Path(results) / layout.HISTORY).glob("*@*") if p.is_dir())


def read(path: Path, kind: str) -> dict[str, Any]:
    """A cell record as the aggregates see it: a kept one carries its history label as build name,
    so it never pairs with, or averages into, the current build's cells."""
    record = records.read(path, kind)
    label = layout.kept_label(path)
    record["history"] = label is not None
    if label:
        record["build"] = {**record["build"], "name": label}
    return record


def unreadable(row_kind: str, cell_kind: str, path: Path, err: records.RecordError) -> dict[str, Any]:
    """The row of a record that could not be read, under its history label when it is a kept one."""
    row = records.unreadable(row_kind, cell_kind, path, err)
    label = layout.kept_label(path)
    return {**row, "build": label, "history": True} if label else row


def current_and_kept(paths: list[str], kind: str, results: Path) -> list[Path]:
    """A summary's input: the run's cell records and every kept one of the same kind."""
    return [Path(p) for p in paths] + layout.kept(kind, results)

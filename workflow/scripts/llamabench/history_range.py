"""Rule ``history_range`` (a checkpoint): the commits a history study measures, oldest first.

Every ``every``-th first-parent commit from ``from`` (and ``to`` itself), only the
tagged ones between them, or the ``refs`` listed; each with its subject and its
position on the first-parent line (for ``refs``, its place in the list).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llamabench.core import records
from llamabench.prepare import commits


def history_range(smk: Any) -> None:
    settings = dict(smk.params.settings)
    records.write(smk.output[0], "history_range", {"study": smk.wildcards.study, "settings": settings,
                                                  "commits": series(settings, smk.params.url)})


def series(settings: Mapping[str, Any], url: str, cache: Path | None = None) -> list[dict[str, Any]]:
    """The study's commits with their subjects and positions."""
    if settings["refs"]:
        repo = commits.mirror(url, list(settings["refs"]), cache)
        found = commits.describe(repo, [commits.commit_of(repo, ref) for ref in settings["refs"]])
        return [{**c, "position": i} for i, c in enumerate(found)]
    line = commits.between(url, settings["from"], settings["to"], cache)
    keep = commits.tagged(url, [c["commit"] for c in line], cache) if settings["tags"] else None
    return [{**c, "position": i} for i, c in enumerate(line)
            if (c["commit"] in keep if keep is not None else i % settings["every"] == 0 or i == len(line) - 1)]

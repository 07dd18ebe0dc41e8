"""Rule ``probe_build`` (a checkpoint): one commit of a bisect or history study, built for its cells.

The commit's tree is exported from the source's mirror (prepare/commits.py),
built with the study's build's CMake options through the shared build cache -
llama-bench alone, the only binary a study's cells run, as upstream's
``compare-commits.sh`` builds it - and the tree removed again (the binaries and
ccache keep what a rebuild needs). The source record is the one the ``git`` source
kind writes for that commit, so a probe and a configured build of the same
commit are one cache entry.

A commit that does not configure or compile is a result, not an error: the job
succeeds with status ``build_failed`` and the compiler's complaint in its log,
and the study skips the commit (as ``git bisect skip`` does). Being a checkpoint
is what lets a study's next step see that before asking for cells.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from llamabench.core import bisect, files, records
from llamabench.core.status import Status
from llamabench.prepare import builds, commits

log = logging.getLogger(__name__)


def probe_build(smk: Any) -> None:
    commit, name = smk.wildcards.commit, smk.wildcards.build
    label = bisect.probe_label(name, commit)
    url = smk.params.url
    bin_dir = Path(smk.output.bin)
    trees = files.cache_root() / "sources"
    trees.mkdir(parents=True, exist_ok=True)
    tree = files.make_temp_dir(trees, f"probe-{commit[:12]}")
    fields: dict[str, Any] = {"name": label, "build": name, "source": smk.wildcards.source, "url": url,
                              "commit": commit, "log": smk.log[0]}
    try:
        commits.export(url, commit, tree)
        source = {"source_kind": "git", "commit": commit, "build_number": None, "ref": commit, "url": url,
                  "source_dir": str(tree)}
        try:
            entry = builds.cached_build(source, label, list(smk.params.cmake_options), smk.threads,
                                       roles=bisect.PROBE_ROLES)
        except builds.CompileError as err:
            log.warning("commit %s does not build: %s", commit[:9], err)
            print(f"llamabench: probe {label} {Status.BUILD_FAILED}: {err}")
            bin_dir.mkdir(parents=True, exist_ok=True)
            records.write(smk.output.manifest, "probe_build", {**fields, "status": Status.BUILD_FAILED.value,
                                                               "error": str(err), "built": None})
            return
    finally:
        files.remove(tree)
    built = builds.installed(entry, bin_dir, label, smk.wildcards.source, smk.params.cmake_options, source)
    records.write(smk.output.manifest, "probe_build", {**fields, "status": Status.OK.value, "error": None,
                                                       "built": built})

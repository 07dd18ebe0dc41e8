"""llama.cpp's history, for bisect and history studies: the commits between two refs, and the tree of one.

The ``git`` source kind fetches one commit at depth 1. A study needs the
history between its refs, so each source URL gets one bare mirror in the
shared cache (``<cache>/repos/<hash of the url>.git``), fetched without blobs
where the server allows it (a blobless fetch of llama.cpp's history is commits
and trees only; the blobs of a commit come when its tree is exported). Every
study of that URL, in any checkout on this machine, shares the mirror.

The commits of a range follow the first parent from the bad ref back to the
good one (llama.cpp merges by squashing: its first-parent history is its list
of changes), oldest first.
"""

from __future__ import annotations

import logging
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from llamabench.core import files
from llamabench.core.errors import UserError
from llamabench.measure import console, processes

log = logging.getLogger(__name__)

GIT_HINT = "install git (Debian: apt-get install git): bisect and history studies read llama.cpp's history"


def mirror(url: str, refs: list[str], cache: Path | None = None) -> Path:
    """The cache's bare mirror of ``url`` with ``refs`` fetched (whole history, blobs left to the server where it
    allows that); a ref that does not exist there is one sentence."""
    git = processes.require("git", GIT_HINT)
    root = (cache or files.cache_root()) / "repos"
    repo = root / f"{files.sha256_text(url)[:16]}.git"
    root.mkdir(parents=True, exist_ok=True)
    with files.file_lock(root / f".{repo.name}.lock"):
        if not (repo / "HEAD").exists():
            staging = files.make_temp_dir(root, "mirror")
            processes.run_logged([git, "init", "-q", "--bare", staging], what="git init")
            processes.run_logged([git, "-C", staging, "remote", "add", "origin", url], what="git remote add")
            processes.run_logged([git, "-C", staging, "config", "remote.origin.promisor", "true"], what="git config")
            processes.run_logged([git, "-C", staging, "config", "remote.origin.partialclonefilter", "blob:none"],
                                 what="git config")
            staging.rename(repo)
        for ref in refs:
            if _known(git, repo, ref):
                continue
            try:
                processes.run_logged([git, "-C", repo, "fetch", "--progress", "--filter=blob:none", "origin",
                                      f"+{ref}:refs/llamabench/{_ref_name(ref)}"], what=f"git fetch of {ref}",
                                     progress=(f"download {ref}", console.git_line))
            except UserError:
                raise UserError(f"{url} has no ref or commit {ref!r} (git fetch failed; the log says why)") from None
    return repo


def _known(git: str, repo: Path, ref: str) -> bool:
    """Whether ``ref`` is a full commit id already in the mirror: a name (a branch, a tag) is fetched again, it may
    have moved."""
    if len(ref) != 40:
        return False
    out = subprocess.run([git, "-C", str(repo), "cat-file", "-e", f"{ref}^{{commit}}"], capture_output=True)
    return out.returncode == 0


def _ref_name(ref: str) -> str:
    return ref.replace("/", "_").replace("^", "_").replace("~", "_")


def commit_of(repo: Path, ref: str) -> str:
    git = processes.require("git", GIT_HINT)
    name = ref if len(ref) == 40 and _known(git, repo, ref) else f"refs/llamabench/{_ref_name(ref)}"
    return processes.output([git, "-C", repo, "rev-parse", f"{name}^{{commit}}"])


def describe(repo: Path, commits: list[str]) -> list[dict[str, Any]]:
    """Each commit with its subject and committer date, in the order given (one ``git log``)."""
    git = processes.require("git", GIT_HINT)
    text = processes.output([git, "-C", repo, "log", "--no-walk=unsorted", "--format=%H%x00%s%x00%cI", *commits])
    found = {sha: (subject, date) for sha, subject, date in (line.split("\0") for line in text.splitlines())}
    return [{"commit": sha, "subject": found[sha][0], "date": found[sha][1]} for sha in commits]


def between(url: str, good: str, bad: str, cache: Path | None = None) -> list[dict[str, Any]]:
    """The good commit, then every first-parent commit after it up to and including bad, oldest first."""
    repo = mirror(url, [good, bad], cache)
    git = processes.require("git", GIT_HINT)
    first, last = commit_of(repo, good), commit_of(repo, bad)
    if subprocess.run([git, "-C", str(repo), "merge-base", "--is-ancestor", first, last]).returncode != 0:
        raise UserError(f"{good} ({first[:9]}) is not an ancestor of {bad} ({last[:9]}): the good ref must come first")
    after = processes.output([git, "-C", repo, "rev-list", "--reverse", "--first-parent", f"{first}..{last}"])
    return describe(repo, [first, *after.split()])


def tagged(url: str, line: list[str], cache: Path | None = None) -> set[str]:
    """The commits of ``line`` (a range, oldest first) that carry a tag, its two ends always."""
    repo = mirror(url, [], cache)
    git = processes.require("git", GIT_HINT)
    processes.run_logged([git, "-C", repo, "fetch", "-q", "--filter=blob:none", "--tags", "origin"],
                         what="git fetch of the tags")
    tags = set(processes.output([git, "-C", repo, "rev-list", "--no-walk", "--tags"]).split())
    return {sha for i, sha in enumerate(line) if i in (0, len(line) - 1) or sha in tags}


def export(url: str, commit: str, dest: Path, cache: Path | None = None) -> Path:
    """The tree of ``commit`` written to ``dest`` (``git archive``: no .git, nothing but the commit's files)."""
    repo = mirror(url, [commit], cache)
    git = processes.require("git", GIT_HINT)
    dest.mkdir(parents=True, exist_ok=True)
    with subprocess.Popen([git, "-C", str(repo), "archive", "--format=tar", commit], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            tar.extractall(dest, filter="tar")
        error = proc.stderr.read().decode().strip()
    if proc.returncode != 0:
        raise UserError(f"git archive of {commit[:9]} failed: {error}")
    return dest

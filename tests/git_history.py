"""A real git history of llama.cpp with one injected slowdown, for bisect and history studies.

Commit 0 is the default sdist's llama.cpp tree committed with a fixed author,
date and message (the commit tests/test_workflow_sources.py builds, so its
build is one cache entry). Every later commit touches a file no build compiles
(``docs/``), except:

- the culprit, which caps the CPU backend's threads at one in ``ggml_graph_plan``
  (ggml-cpu.c): generation on two threads becomes measurably slower, the way a
  real regression in one translation unit does; or, with ``pause_us``, which
  sleeps that long in every graph plan: a smaller slowdown of a size one chooses
  (about 10-20 % of tg16 at 1000-3000 us here);
- optionally a commit that breaks the compile of one file (``ggml-cpu.c``) and
  the next one, which restores it: a commit that does not build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

FIXED_IDENTITY = {
    "GIT_AUTHOR_NAME": "llamabench tests", "GIT_AUTHOR_EMAIL": "tests@llamabench.invalid",
    "GIT_COMMITTER_NAME": "llamabench tests", "GIT_COMMITTER_EMAIL": "tests@llamabench.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}
FIRST_SUBJECT = "llama.cpp tree of the llama-cpp-python sdist"
CPU_BACKEND = "ggml/src/ggml-cpu/ggml-cpu.c"
ANCHOR = ("    if (n_threads <= 0) {\n"
          "        n_threads = threadpool ? threadpool->n_threads : GGML_DEFAULT_N_THREADS;\n    }\n")
CAP = ANCHOR + "    n_threads = MIN(n_threads, 1); // one thread is enough for a small graph\n"
CULPRIT_SUBJECT = "ggml-cpu : plan small graphs on one thread"
PAUSE_SUBJECT = "ggml-cpu : yield before planning a graph"


def paused(us: int) -> str:
    """The graph plan's anchor followed by a sleep of ``us`` microseconds."""
    return ANCHOR + f"    {{ struct timespec pause = {{0, {us * 1000}}}; nanosleep(&pause, NULL); }}\n"
BROKEN_SUBJECT = "ggml-cpu : refactor graph planning (wip)"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **FIXED_IDENTITY}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def first_commit(tree: Path, repo: Path) -> str:
    """``repo``: ``tree`` committed once (fixed identity, date and message: the same commit on every machine)."""
    shutil.copytree(tree, repo)
    git(repo, "init", "-q", "-b", "master")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", FIRST_SUBJECT)
    git(repo, "tag", "b9999")
    return git(repo, "rev-parse", "HEAD")


def extend(repo: Path, count: int, culprit: int, broken: int | None = None, pause_us: int | None = None,
           ) -> list[str]:
    """``count`` commits on top of HEAD (numbered from 1): the ``culprit``-th caps the threads (or, with
    ``pause_us``, sleeps that long in every graph plan), the ``broken``-th does not compile and the next restores
    it, every other one edits a document. Returns every commit, HEAD's first."""
    source = repo / CPU_BACKEND
    original = source.read_text()
    assert ANCHOR in original, f"{CPU_BACKEND} changed: the injected regression needs a new anchor"
    commits = [git(repo, "rev-parse", "HEAD")]
    capped, slow = False, paused(pause_us) if pause_us else CAP
    for n in range(1, count + 1):
        if n == culprit:
            source.write_text(source.read_text().replace(ANCHOR, slow))
            capped, subject = True, PAUSE_SUBJECT if pause_us else CULPRIT_SUBJECT
        elif n == broken:
            source.write_text(source.read_text().replace(ANCHOR, ANCHOR + "    this does not compile;\n"))
            subject = BROKEN_SUBJECT
        elif broken is not None and n == broken + 1:
            source.write_text(original.replace(ANCHOR, slow) if capped else original)
            subject = "ggml-cpu : fix the build"
        else:
            notes = repo / "docs" / "history-notes.md"
            notes.parent.mkdir(exist_ok=True)
            notes.write_text((notes.read_text() if notes.exists() else "") + f"- note {n}\n")
            subject = f"docs : note {n}"
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", subject)
        commits.append(git(repo, "rev-parse", "HEAD"))
    return commits

"""Materialise the llama.cpp tree named in the config, and say exactly which commit it is.

Three kinds: ``pypi-sdist`` (the tree vendored by llama-cpp-python's sdist,
which works with only the package index reachable), ``git`` (url + ref) and
``path`` (a checkout used in place, never modified). Fetched trees live in
the shared cache, keyed by what identifies them, so a second checkout or the
test suite reuses them.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from llamabench.core import files, records
from llamabench.core.errors import UserError
from llamabench.measure import console, processes

log = logging.getLogger(__name__)


VENDOR_PREFIX = "vendor/llama.cpp/"


def source(smk: Any) -> None:
    """Rule ``source``: the source record at ``results/sources/<source>/manifest.json``."""
    records.write(smk.output.manifest, "source", fetch(dict(smk.params.source)))


def fetch(cfg: dict[str, Any], cache: Path | None = None) -> dict[str, Any]:
    """The source record's fields for ``cfg``, fetching the tree into the cache if needed."""
    cache = cache or files.cache_root()
    kind = cfg["kind"]
    if kind == "pypi-sdist":
        info = _pypi_sdist(cfg["package"], str(cfg["version"]), cache / "sources")
    elif kind == "git":
        info = _git(cfg["url"], str(cfg["ref"]), cache / "sources")
    elif kind == "path":
        info = _path(Path(cfg["path"]).expanduser().resolve())
    else:  # the schema forbids this; kept for direct callers
        raise UserError(f"unknown source kind {kind!r}")
    return {"source_kind": kind, "requested": cfg, **info}


def _pypi_sdist(package: str, version: str, root: Path) -> dict[str, Any]:
    dest = root / f"pypi-{package}-{version}"
    with files.file_lock(root / f".pypi-{package}-{version}.lock"):
        if not (dest / "info.json").exists():
            _fetch_sdist(package, version, dest)
    info = files.read_json(dest / "info.json")
    return {**info, "source_dir": str(dest / "llama.cpp")}


def _fetch_sdist(package: str, version: str, dest: Path) -> None:
    download = files.make_temp_dir(dest.parent, "download")
    try:
        # --no-binary for this package only: ":all:" would also force pip to compile the
        # sdist's build dependencies (cmake itself) from source just to read its metadata.
        processes.run_logged(
            [sys.executable, "-m", "pip", "download", *console.pip_progress(), "--no-deps", "--no-binary", package,
             "--dest", download, f"{package}=={version}"],
            what=f"pip download of {package}=={version}", progress=("download", console.pip_line),
        )
        archives = sorted(download.glob("*.tar.gz"))
        if not archives:
            raise UserError(f"pip found no sdist for {package}=={version}")
        archive = archives[0]
        staging = files.make_temp_dir(dest.parent, "extract")
        try:
            commit = _extract_vendored_tree(archive, staging / "llama.cpp")
            files.write_json(
                staging / "info.json",
                {
                    "archive": archive.name,
                    "archive_sha256": files.sha256_file(archive),
                    "commit": commit,
                    "build_number": None,
                    "ref": f"{package}=={version}",
                },
            )
            staging.rename(dest)
        finally:
            files.remove(staging)
    finally:
        files.remove(download)


def _extract_vendored_tree(archive: Path, dest: Path) -> str:
    """Unpack ``vendor/llama.cpp`` from the sdist and return the commit its git stub names.

    The sdist carries the submodule's ``HEAD`` under ``.git/modules/vendor/llama.cpp``;
    its vendored tree has no usable git metadata of its own.
    """
    commit = None
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            top, _, rel = member.name.partition("/")
            if rel == ".git/modules/vendor/llama.cpp/HEAD":
                commit = tar.extractfile(member).read().decode().strip()
            elif rel.startswith(VENDOR_PREFIX) and not rel.startswith(VENDOR_PREFIX + ".git"):
                member.name = rel[len(VENDOR_PREFIX):]
                members.append(member)
        if not members:
            raise UserError(f"{archive.name} has no {VENDOR_PREFIX} tree")
        tar.extractall(dest, members=members, filter="data")
    if not commit or not re.fullmatch(r"[0-9a-f]{40}", commit):
        commit = _commit_from_changelog(archive)
    return commit


def _commit_from_changelog(archive: Path) -> str | None:
    """Older sdists lack the git stub; their CHANGELOG names the llama.cpp commit of each release."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.name.count("/") == 1 and member.name.endswith("/CHANGELOG.md"):
                text = tar.extractfile(member).read().decode()
                match = re.search(r"llama\.cpp@([0-9a-f]{7,40})", text)
                return match.group(1) if match else None
    return None


def _git(url: str, ref: str, root: Path) -> dict[str, Any]:
    """Shallow-fetch ``ref`` (tag, branch or commit); fall back to a full clone for servers that refuse."""
    git = processes.require("git", "install git (Debian: apt-get install git) or use a pypi-sdist source")
    staging = files.make_temp_dir(root, "git")
    try:
        processes.run_logged([git, "init", "-q", staging], what="git init")
        processes.run_logged([git, "-C", staging, "remote", "add", "origin", url], what="git remote add")
        try:
            processes.run_logged([git, "-C", staging, "fetch", "--progress", "--depth", "1", "origin", ref],
                                 what=f"shallow git fetch of {ref}", progress=(f"download {ref}", console.git_line))
        except UserError:
            log.info("shallow fetch refused; fetching full history")
            processes.run_logged([git, "-C", staging, "fetch", "--progress", "--tags", "origin",
                                  "+refs/heads/*:refs/remotes/origin/*"], what=f"git fetch of {url}",
                                 progress=(f"download {url}", console.git_line))
            processes.run_logged([git, "-C", staging, "checkout", "-q", ref], what=f"git checkout of {ref}")
        else:
            processes.run_logged([git, "-C", staging, "checkout", "-q", "FETCH_HEAD"], what="git checkout")
        commit = processes.output([git, "-C", staging, "rev-parse", "HEAD"])
        shallow = processes.output([git, "-C", staging, "rev-parse", "--is-shallow-repository"]) == "true"
        build_number = None if shallow else int(processes.output([git, "-C", staging, "rev-list", "--count", "HEAD"]))
        dest = root / f"git-{commit}"
        with files.file_lock(root / f".git-{commit}.lock"):
            if not dest.exists():
                staging.rename(dest)
    finally:
        files.remove(staging)
    return {"commit": commit, "build_number": build_number, "ref": ref, "url": url,
            "source_dir": str(dest)}


def _path(path: Path) -> dict[str, Any]:
    if not (path / "CMakeLists.txt").is_file():
        raise UserError(f"{path} is not a llama.cpp checkout (no CMakeLists.txt)")
    commit, build_number, dirty = None, None, None
    if (path / ".git").exists():
        git = processes.require("git", "install git so that the checkout's commit can be recorded")
        commit = processes.output([git, "-C", path, "rev-parse", "HEAD"])
        dirty = bool(processes.output([git, "-C", path, "status", "--porcelain", "--untracked-files=no"]))
        if processes.output([git, "-C", path, "rev-parse", "--is-shallow-repository"]) != "true":
            build_number = int(processes.output([git, "-C", path, "rev-list", "--count", "HEAD"]))
    return {
        "commit": commit,
        "build_number": build_number,
        "ref": str(path),
        "dirty": dirty,
        "tree_fingerprint": tree_fingerprint(path),
        "source_dir": str(path),
    }


def path_state(path: Path) -> list[str | None]:
    """What makes a ``path`` source stale between runs: its files, and its commit
    (committing edits that were already built changes no file)."""
    head = None
    if (path / ".git").exists() and shutil.which("git"):
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
        head = out.stdout.strip() or None
    return [tree_fingerprint(path), head]


def tree_fingerprint(path: Path) -> str:
    """Hash of the files a build reads, so an edited ``path`` checkout never hits a stale cache entry.

    Size and mtime stand in for content: cheap on a 170 MB tree and changed by any edit.
    """
    parts = []
    for sub in ("CMakeLists.txt", "cmake", "ggml", "src", "include", "common", "tools", "vendor"):
        base = path / sub
        for item in sorted([base] if base.is_file() else base.rglob("*")):
            if item.is_file():
                stat = item.stat()
                parts.append(f"{item.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}")
    return files.sha256_text("\n".join(parts))

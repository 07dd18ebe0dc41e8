"""Each source kind for real: the PyPI sdist, a local git repository, a path used in place."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from llamabench import source
from llamabench.core.errors import UserError


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def upstream(tmp_path: Path) -> Path:
    """A small llama.cpp-shaped repository with a tag, a branch and three commits."""
    repo = tmp_path / "upstream"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "master")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "test")
    for n in range(3):
        (repo / "CMakeLists.txt").write_text(f"cmake_minimum_required(VERSION 3.14)\n# rev {n}\n")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", f"rev {n}")
        if n == 0:
            git(repo, "tag", "b100")
    git(repo, "branch", "feature", "HEAD~1")
    return repo


def test_pypi_sdist_records_the_vendored_commit(source_manifest: dict[str, Any]) -> None:
    assert source_manifest["source_kind"] == "pypi-sdist"
    assert re.fullmatch(r"[0-9a-f]{40}", source_manifest["commit"])
    assert re.fullmatch(r"[0-9a-f]{64}", source_manifest["archive_sha256"])
    tree = Path(source_manifest["source_dir"])
    assert (tree / "tools" / "llama-bench" / "llama-bench.cpp").is_file()
    assert not (tree / ".git").exists()


@pytest.mark.parametrize("ref", ["b100", "feature", "master", "commit"])
def test_git_source_resolves_each_kind_of_ref(upstream: Path, tmp_path: Path, ref: str) -> None:
    expected = {"b100": git(upstream, "rev-parse", "b100"), "feature": git(upstream, "rev-parse", "feature"),
                "master": git(upstream, "rev-parse", "master")}
    if ref == "commit":
        ref = expected["commit"] = git(upstream, "rev-parse", "HEAD~1")
    url = upstream.as_uri()  # file:// so that git honours --depth
    manifest = source.fetch({"kind": "git", "url": url, "ref": ref}, cache=tmp_path / "cache")
    want = expected.get(ref, expected.get("commit"))
    assert manifest["commit"] == want
    tree = Path(manifest["source_dir"])
    assert git(tree, "rev-parse", "HEAD") == want
    assert git(tree, "rev-parse", "--is-shallow-repository") == "true"
    assert manifest["build_number"] is None  # a shallow clone cannot count commits


def test_git_source_reuses_the_cached_tree(upstream: Path, tmp_path: Path) -> None:
    cfg = {"kind": "git", "url": upstream.as_uri(), "ref": "master"}
    first = source.fetch(cfg, cache=tmp_path / "cache")
    second = source.fetch(cfg, cache=tmp_path / "cache")
    assert first["source_dir"] == second["source_dir"]
    assert len(list((tmp_path / "cache" / "sources").glob("git-*"))) == 1


def test_git_source_bad_ref_is_one_sentence(upstream: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="^git checkout of no-such-ref failed with exit status"):
        source.fetch({"kind": "git", "url": upstream.as_uri(), "ref": "no-such-ref"}, cache=tmp_path)


def test_path_source_is_recorded_and_never_modified(upstream: Path) -> None:
    before = git(upstream, "status", "--porcelain", "--ignored")
    manifest = source.fetch({"kind": "path", "path": str(upstream)})
    assert manifest["source_dir"] == str(upstream)
    assert manifest["commit"] == git(upstream, "rev-parse", "HEAD")
    assert manifest["build_number"] == 3
    assert manifest["dirty"] is False
    assert git(upstream, "status", "--porcelain", "--ignored") == before


def test_path_source_fingerprint_follows_edits(upstream: Path) -> None:
    first = source.fetch({"kind": "path", "path": str(upstream)})
    (upstream / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.14)\n# edited\n")
    second = source.fetch({"kind": "path", "path": str(upstream)})
    assert second["dirty"] is True
    assert first["tree_fingerprint"] != second["tree_fingerprint"]


def test_path_source_must_be_a_checkout(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a llama.cpp checkout"):
        source.fetch({"kind": "path", "path": str(tmp_path)})

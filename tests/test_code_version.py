"""core/code_version.py: what reruns a rule when its code changes, and the check that keeps the declared
versions of the measuring rules honest (the workflow-level reruns are in tests/test_workflow.py)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT
from llamabench.core import code_version


def test_every_measuring_rules_code_is_what_its_version_was_declared_for() -> None:
    """After an edit to a measuring or preparing rule's code, decide: accept (no result changes) or bump."""
    assert code_version.undecided() == {}, (
        "the code of these rules changed since their version was declared in workflow/versions.yaml: run "
        "`python -m llamabench.core.code_version accept RULE` (from workflow/scripts) if no result changes, "
        "`... bump RULE` if results do")


def test_log_calls_docstrings_and_comments_change_no_measuring_hash() -> None:
    source = (
        '"""Doc."""\nimport logging\nlog = logging.getLogger(__name__)\n\n'
        'def f(x):\n    """Doc."""\n    log.info("measuring %s", x)  # a comment\n    print("hi")\n    return x + 1\n')
    edited = source.replace('"measuring %s"', '"now measuring %s"').replace("# a comment", "").replace(
        "print(\"hi\")", "print(\"hello\")").replace('"""Doc."""', '"""Other doc."""')
    changed = source.replace("return x + 1", "return x + 2")
    strip = lambda text: ast.dump(code_version._strip(ast.parse(text), logging=True))  # noqa: E731
    assert strip(source) == strip(edited) and strip(source) != strip(changed)


def test_the_closures_follow_imports_into_subpackages_and_skip_bookkeeping() -> None:
    bench = code_version.imports_closure("bench_cell", skip=code_version.BOOKKEEPING)
    assert {"measure.llama_bench", "core.axes", "measure.processes", "measure.sampler"} <= bench
    assert not bench & code_version.BOOKKEEPING
    assert "measure.llama_bench" in code_version.imports_closure("rpc_cell")
    assert "measure.llama_bench" not in code_version.imports_closure("serve_cell")


def test_accept_and_bump_rewrite_the_declaration(tmp_path: Path) -> None:
    """In a copy: an edit makes the rule undecided; bump raises its version and records the new hash."""
    copy = tmp_path / "workflow"
    shutil.copytree(ROOT / "workflow", copy, ignore=shutil.ignore_patterns("__pycache__"))
    module = copy / "scripts/llamabench/measure/llama_server.py"
    module.write_text(module.read_text().replace("READY_TIMEOUT = 300.0", "READY_TIMEOUT = 301.0"))

    def run(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "llamabench.core.code_version", *args], cwd=copy / "scripts",
                              capture_output=True, text=True, check=True).stdout

    # every rule that runs a server reaches it: serving cells, a served tuning study's candidates, a load sweep's
    # pilot and levels
    servers = ["load_cell", "load_pilot", "serve_cell", "tune_serve_cell"]
    assert [line.split(":")[0] for line in run("status").splitlines()] == servers
    before = code_version.declared_version("serve_cell")
    for rule in servers:
        run("bump", rule)
    assert run("status") == ""
    assert f"serve_cell: {{version: {before + 1}, code: " in (copy / "versions.yaml").read_text()

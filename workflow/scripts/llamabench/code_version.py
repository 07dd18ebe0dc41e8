"""What reruns a rule when the code behind it changes.

Snakemake's code trigger sees only the rule's script, which is the same one-line
dispatcher for every rule, so each rule gets a ``version`` param instead:

- a rule that measures or fetches (source, build, model, smoke, bench_cell)
  declares ``RULE_VERSION = N`` in its module. It is bumped on purpose when what
  the rule produces changes, and recorded in every record it writes: re-measuring
  a 500-cell matrix because a log message changed would be waste.
- every other rule (summary, figures, report_html) is versioned by a hash of its
  module and every ``llamabench`` module it imports, transitively, as syntax
  trees without comments, docstrings or formatting, plus their data files
  (the report template, the record schemas). Any edit that can change its
  output reruns it; a comment does not.

Nothing is imported: the Snakefile reads these versions before any job runs.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "llamabench"
PACKAGE_DIR = Path(__file__).resolve().parent
RECORD_SCHEMAS = PACKAGE_DIR.parents[1] / "schemas" / "records"


def rule_version(rule: str) -> int | str:
    """The ``RULE_VERSION`` that module ``rule`` declares, else the hash of its code."""
    for node in _tree(rule).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "RULE_VERSION" for t in node.targets):
            return ast.literal_eval(node.value)
    return code_hash(rule)


def code_hash(module: str) -> str:
    digest = hashlib.sha256()
    for name in sorted(imports_closure(module)):
        digest.update(f"{name}\n{ast.dump(_strip_docstrings(_tree(name)))}\n".encode())
        for asset in assets(name):
            digest.update(asset.name.encode() + b"\n" + asset.read_bytes())
    return digest.hexdigest()[:16]


def imports_closure(module: str) -> set[str]:
    """``module`` and every package module it imports, directly or not."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(_package_imports(_tree(name)))
    return seen


def assets(module: str) -> list[Path]:
    """The data files a module reads: files beside it named after it, and for ``records`` the schemas."""
    found = [p for p in PACKAGE_DIR.glob(f"{module}.*") if p.suffix != ".py"]
    if module == "records":
        found += list(RECORD_SCHEMAS.glob("*.yaml"))
    return sorted(found)


def _package_imports(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE + "."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith(PACKAGE + "."))
    return {name for name in found if (PACKAGE_DIR / f"{name}.py").is_file()}


@functools.cache
def _tree(module: str) -> ast.Module:
    return ast.parse((PACKAGE_DIR / f"{module}.py").read_text())


def _strip_docstrings(tree: ast.Module) -> ast.Module:
    """A copy without docstrings: documentation edits never rerun a rule."""
    tree = ast.parse(ast.unparse(tree))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return tree

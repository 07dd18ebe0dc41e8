"""What reruns a rule when the code behind it changes.

Snakemake's code trigger sees only a rule's script, which is the same one-line
dispatcher for every rule, so each rule gets a ``version`` param instead.

**Derived rules** (summaries, statistics, findings, figures, the report, the
export) are versioned by a hash of their module and every package module it
imports, transitively, as syntax trees without comments, docstrings or
formatting, plus their data files (the report template, the record schemas).
Any edit that can change their output reruns them; a comment does not. They
never import a measuring or rule module, so an edit there reruns no aggregation.

**Rules that fetch, build or measure** keep a *declared version* in
``workflow/versions.yaml``, beside the hash of the code it was declared for: the
rule's module (a variant's, ``use rule bench_cell as tune_cell``, is its program's:
:func:`module_of`) and every module of the measuring library it reaches (llama-bench's
argument builder, the process lifecycle, the sampler, the axis spellings), with
log calls, docstrings and comments stripped, and bookkeeping modules (records,
layout, plan, ...) left out. While the hash matches, the version param is the
declared version, so measurements survive refactors and log messages. After an
edit to a *measuring* rule's code the param becomes ``<version>+<hash>``: every
result of the rule is measured again, the safe side. A *preparing* rule (source,
hardware, build, model) keeps its declared version: its results are cached by
content (the build's cache key holds its version), and a rerun would remake every
cell downstream. Either way someone decides::

    python -m llamabench.core.code_version accept bench_cell   # the edit changes no measurement
    python -m llamabench.core.code_version bump bench_cell     # it does: measure everything again

``tests/test_code_version.py`` fails while a rule's code and its declared hash
differ, so no edit reaches main undecided. The declared version is recorded in
every record the rule writes (``rule_version``); the build's is part of the
build cache key.

Nothing is imported: the Snakefile reads these versions before any job runs. What a
module contributes (the package modules it imports, the digests of its stripped
syntax trees) is kept in the machine's cache under the digest of its source, so a
Snakefile's parse and every job's record hash files instead of parsing them: the
stripping made 2.1 s of a 4.7 s Snakemake start here.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from llamabench.core import files

PACKAGE = "llamabench"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
SCHEMAS = PACKAGE_DIR.parents[1] / "schemas"
VERSIONS = PACKAGE_DIR.parents[1] / "versions.yaml"
# Modules whose edits never change what is measured: what records look like, where they go, how the
# plan is made (its results reach a measuring job as params), how a job is wired to Snakemake, and the
# memory prediction a cell is started by (it decides whether a cell runs, never what it measures; the
# memory table predicts again, so an improved predictor re-measures nothing).
BOOKKEEPING = frozenset({"entry", "core.bisect", "core.code_version", "core.configuration", "core.errors", "core.files",
                         "core.history", "core.layout", "core.plan", "core.platforms", "core.presets",
                         "core.records", "core.status", "core.tuning", "derive.memory", "derive.memory_fit",
                         "measure.fit_params"})
LOGGERS = frozenset({"log", "logger", "logging"})
FACTS_FORMAT = 1  # of a module's cached facts: raise it when what _facts computes changes
# A variant of a measuring program's rule (``use rule bench_cell as tune_cell with:``) -> the program's rule,
# whose module runs it: the variant's own name keys its version, its results and its log, its code is the program's.
VARIANTS = {"tune_cell": "bench_cell", "history_cell": "bench_cell", "bisect_cell": "bench_cell",
            "tune_serve_cell": "serve_cell", "load_cell": "serve_cell", "quality_reference": "quality_cell"}


@functools.cache
def _sections() -> dict[str, dict[str, dict[str, object]]]:
    return yaml.safe_load(VERSIONS.read_text())


def declared() -> dict[str, dict[str, object]]:
    """{rule: {"version": int, "code": hash}} of the rules that fetch, build or measure (a hash of digits only
    reads as a YAML integer: it is taken as text)."""
    return {rule: {**entry, "code": str(entry["code"])}
            for rule, entry in {**_sections()["measure"], **_sections()["prepare"]}.items()}


def module_of(rule: str) -> str:
    """The package module (and its function of the same name) that runs ``rule``: its own, or for a variant its
    program's."""
    return VARIANTS.get(rule, rule)


def rule_version(rule: str) -> int | str:
    """The ``version`` param of ``rule``: see the module's docstring."""
    entry = declared().get(rule)
    if entry is None:
        return code_hash(rule)
    current = rule_code(rule)
    if rule in _sections()["prepare"] or entry["code"] == current:
        return entry["version"]
    return f"{entry['version']}+{current}"


def declared_version(rule: str) -> int:
    return int(declared()[rule]["version"])


def undecided() -> dict[str, str]:
    """{rule: its current hash} of every measuring rule whose code differs from what its version declares."""
    current = {rule: rule_code(rule) for rule in declared()}
    return {rule: code for rule, code in current.items() if declared()[rule]["code"] != code}


@functools.cache
def code_hash(module: str) -> str:
    """A derived rule's version: its whole import closure, with data files, without docstrings."""
    digest = hashlib.sha256()
    for name in sorted(imports_closure(module)):
        digest.update(f"{name}\n{_facts(name)['plain']}\n".encode())
        for asset in assets(name):
            digest.update(asset.name.encode() + b"\n" + asset.read_bytes())
    return digest.hexdigest()[:16]


def rule_code(rule: str) -> str:
    """The measuring hash of the code that runs ``rule``: a variant's is its program's."""
    return measuring_hash(module_of(rule))


@functools.cache
def measuring_hash(module: str) -> str:
    """The code a measuring rule's results depend on: its closure without bookkeeping, logging stripped."""
    digest = hashlib.sha256()
    for name in sorted(imports_closure(module, skip=BOOKKEEPING)):
        digest.update(f"{name}\n{_facts(name)['quiet']}\n".encode())
    return digest.hexdigest()[:16]


def imports_closure(module: str, skip: frozenset[str] = frozenset()) -> set[str]:
    """``module`` and every package module it imports, directly or not (``skip``: neither them nor theirs)."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name not in seen and name not in skip:
            seen.add(name)
            pending.extend(package_imports(name))
    return seen


@functools.cache
def package_imports(module: str) -> frozenset[str]:
    """The package modules ``module`` imports, by dotted name below the package (``core.axes``)."""
    return frozenset(name for name in _facts(module)["imports"] if _source(name).is_file())


def _imports(tree: ast.Module) -> set[str]:
    """Every dotted name below the package that ``tree`` imports, or imports from (a module or a name in one)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            below = node.module.split(".")[1:]
            found.update(".".join([*below, alias.name]) for alias in node.names)
            if below:
                found.add(".".join(below))
        elif isinstance(node, ast.Import):
            found.update(".".join(a.name.split(".")[1:]) for a in node.names if a.name.startswith(PACKAGE + "."))
    return found


def assets(module: str) -> list[Path]:
    """The data files a module reads: files beside it named after it, and for ``core.records`` the schemas."""
    path = _source(module)
    found = [p for p in path.parent.glob(f"{path.stem}.*") if p.suffix != ".py"]
    if module == "core.records":
        found += list((SCHEMAS / "records").glob("*.yaml"))
    return sorted(found)


def _source(module: str) -> Path:
    return PACKAGE_DIR.joinpath(*module.split(".")).with_suffix(".py")


@functools.cache
def _facts(module: str) -> dict[str, Any]:
    """What of ``module`` the hashes cover: the package names it imports, and the digests of its syntax tree
    stripped of docstrings (``plain``) and of log calls too (``quiet``). Kept in the cache under the digest of
    its source (and of this Python, whose trees they are): a Snakefile's parse hashes ~35 rules' overlapping
    closures, and every job its own rule's."""
    source = _source(module).read_bytes()
    key = hashlib.sha256(f"{FACTS_FORMAT}:{sys.version_info[:2]}:".encode() + source).hexdigest()
    path = files.cache_root() / "code-facts" / f"{key[:32]}.json"
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())
    tree = ast.parse(source)
    found = {"imports": sorted(_imports(tree)), **{
        name: hashlib.sha256(ast.dump(_strip(tree, logging=quiet)).encode()).hexdigest()
        for name, quiet in (("plain", False), ("quiet", True))}}
    with contextlib.suppress(OSError):  # a cache that cannot be written: computed again next time
        files.write_json(path, found)
    return found


def _strip(tree: ast.Module, logging: bool) -> ast.Module:
    """A copy without docstrings (and with ``logging``, without log calls): neither changes a result."""
    tree = ast.parse(ast.unparse(tree))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        kept = [stmt for i, stmt in enumerate(body)
                if not (i == 0 and _is_docstring(stmt)) and not (logging and _is_log_call(stmt))]
        node.body = kept or [ast.Pass()]
    return tree


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _is_log_call(stmt: ast.stmt) -> bool:
    """``log.info(...)``, ``logging.warning(...)``, ``print(...)`` as statements."""
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return False
    func = stmt.value.func
    if isinstance(func, ast.Name):
        return func.id == "print"
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in LOGGERS


def _decide(action: str, rules: list[str]) -> None:
    """``accept``: the rules' code changed but no measurement did; ``bump``: it did."""
    text = VERSIONS.read_text()
    entries = declared()
    for rule in rules:
        entry = entries[rule]
        old = re.compile(rf"{rule}: \{{version: {entry['version']}, code: '?{entry['code']}'?\}}")
        version = int(entry["version"]) + (action == "bump")
        code = rule_code(rule)
        new = f"{rule}: {{version: {version}, code: {repr(code) if code.isdigit() else code}}}"
        if not old.search(text):
            raise SystemExit(f"{VERSIONS} does not spell {rule} as '{old.pattern}': edit it by hand")
        text = old.sub(new, text, count=1)
    VERSIONS.write_text(text)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("accept", "bump", "status"):
        raise SystemExit("usage: python -m llamabench.core.code_version status | accept RULE... | bump RULE...")
    if sys.argv[1] == "status":
        for rule, current in sorted(undecided().items()):
            print(f"{rule}: code {current} differs from its declared hash: accept or bump it")
    else:
        _decide(sys.argv[1], sys.argv[2:] or sorted(undecided()))

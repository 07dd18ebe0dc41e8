"""The code base's own conventions, checked so that they survive the next rule someone adds."""

from __future__ import annotations

import ast
import re

import yaml

from conftest import ROOT
from llamabench.core import code_version, layout, records
from llamabench.core.status import Status

RULES_DIR = ROOT / "workflow" / "rules"
PACKAGE_DIR = ROOT / "workflow" / "scripts" / "llamabench"
# Rules that fetch, build, measure or decide what to measure (each writes records of its own kind and
# declares its version in workflow/versions.yaml), and rules derived from them (versioned by a code hash).
MEASURING = ("source", "hardware", "build", "model", "smoke", "bench_cell", "tune_cell", "serve_cell",
             "tune_serve_cell", "rpc_cell", "rpc_smoke", "bandwidth", "remeasure", "tune_round", "load_pilot",
             "load_cell", "probe_build", "history_range", "bisect_step", "bisect_cell", "history_cell",
             "quality_text", "quality_cell", "quality_reference", "perplexity_build")
DERIVED = ("summary", "serving_summary", "rpc_summary", "stats", "export", "memory_table", "tune", "load_sweep",
           "bisect_study", "history_study", "findings", "figures", "report_html", "quality_summary")
RULES = (*MEASURING, *DERIVED)
# Top-level modules that are not rules: what several rules share.
LIBRARIES = {"entry", "preflight", "plots"}
# The layers (package docstrings say why): what each may import from the package.
LAYERS = {"core": {"core"}, "derive": {"core", "derive"}, "measure": {"core", "measure"},
          "prepare": {"core", "prepare", "measure"}}


def rules() -> dict[str, tuple[str, str | None, str]]:
    """{rule name: (its file, the rule it is a variant of or None, its text)} for every rule in workflow/rules/; a
    variant's (``use rule bench_cell as tune_cell with:``) text is what it overrides."""
    found = {}
    for smk in sorted(RULES_DIR.glob("*.smk")):
        for match in re.finditer(r"^(?:(?:rule|checkpoint) (\w+)|use rule (\w+) as (\w+) with):\n((?:[ \t]+.*\n|\n)*)",
                                 smk.read_text(), flags=re.MULTILINE):
            found[match.group(1) or match.group(3)] = (smk.name, match.group(2), match.group(4))
    return found


def modules() -> list[str]:
    """Every module of the package by dotted name below it (``core.axes``, ``bench_cell``)."""
    return sorted(".".join(p.relative_to(PACKAGE_DIR).with_suffix("").parts) for p in PACKAGE_DIR.rglob("*.py")
                  if p.name != "__init__.py")


def test_a_rule_leads_to_its_file_module_and_function_by_name() -> None:
    """Rule X lives in workflow/rules/X.smk and runs llamabench/X.py's function X, through the one script. A variant
    of a measuring program's rule (``use rule bench_cell as tune_cell with:``) lives beside it and runs its module,
    as core/code_version.py's ``module_of`` says (no module of its own forwards to it); it names its own log and
    version."""
    found = rules()
    assert set(found) == set(RULES)
    for name, (smk, _, text) in found.items():
        program = name
        while found[program][1]:
            program = found[program][1]
        assert program == code_version.module_of(name) and smk == f"{program}.smk", name
        assert (PACKAGE_DIR / f"{name}.py").is_file() == (program == name), name
        module = ast.parse((PACKAGE_DIR / f"{program}.py").read_text())
        assert program in {node.name for node in module.body if isinstance(node, ast.FunctionDef)}, name
        assert ("script:\n        RULE_SCRIPT" in text) == (program == name), name
        assert "log:" in text, f"rule {name} has no log"
        assert "version=get_rule_version(" + repr(name).replace("'", '"') + ")" in text, name
    assert [p.name for p in (ROOT / "workflow" / "scripts").glob("*.py")] == ["rule.py"]


def test_rule_modules_are_thin_and_layers_import_downwards_only() -> None:
    """A rule module never imports another (no rule doubles as a library); a derived module never imports the
    measuring library, so an edit there reruns no aggregation, and the reverse."""
    top_level = {m for m in modules() if "." not in m}
    for module in modules():
        imported = code_version.package_imports(module)
        layer = module.split(".")[0] if "." in module else None
        if layer is None:
            assert not imported & (top_level - LIBRARIES), (module, imported & top_level)
        else:
            assert {name.split(".")[0] for name in imported} <= LAYERS[layer], (module, imported)


# What only the edges do (rule modules, measure/, prepare/, core's readers and writers): read or write files,
# draw, start processes.
EDGE_CALLS = {"open", "read_text", "write_text", "read_bytes", "write_bytes", "savefig", "read", "read_table",
              "read_each", "write", "write_table", "write_json", "read_json", "cached_json", "write_lines", "run",
              "Popen", "glob", "rglob", "unlink", "mkdir"}


def test_derive_is_pure() -> None:
    """derive/ takes records and values and returns values (its package docstring): nothing there reads or
    writes a file, draws or starts a process, so each decision is tested on recorded data in milliseconds."""
    for path in sorted((PACKAGE_DIR / "derive").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                assert name not in EDGE_CALLS, f"{path.name}:{node.lineno} calls {name}"
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not {a.name for a in node.names} & {"files", "plots", "subprocess"}, path.name
            if isinstance(node, ast.Import):
                assert not {a.name for a in node.names} & {"subprocess", "matplotlib"}, path.name


def test_aggregations_never_reach_the_measuring_or_build_code() -> None:
    for rule in DERIVED:
        reached = code_version.imports_closure(rule)
        assert not any(name.startswith(("measure.", "prepare.")) for name in reached), (rule, reached)
        assert not reached & set(MEASURING), (rule, reached)


def test_each_rule_that_writes_a_record_has_a_schema_of_its_name() -> None:
    for kind in records.KINDS:
        assert records.version(kind) >= 1
    # a variant (a tuning candidate's round, a load level's, a commit's cell) writes its program's record, in its
    # own directory
    assert {code_version.module_of(rule) for rule in MEASURING} <= set(records.KINDS)


def test_measuring_rules_declare_a_version_and_the_others_hash_their_code() -> None:
    assert set(code_version.declared()) == set(MEASURING)
    for name in MEASURING:
        assert isinstance(code_version.declared_version(name), int), name
    for name in DERIVED:
        assert re.fullmatch(r"[0-9a-f]{16}", code_version.rule_version(name)), name
    assert "derive.tables" in code_version.imports_closure("report_html")
    assert "core.records" in code_version.imports_closure("summary")


def test_the_results_layout_is_spelled_in_one_place() -> None:
    """No module but the layout spells a record directory under results/."""
    spelled = re.compile(r"""["'](?:results/)?(cells|serving|rpc|smoke|builds|models|sources)/\{""")
    for module in modules():
        if module != "core.layout":
            assert not spelled.search((PACKAGE_DIR / f"{module.replace('.', '/')}.py").read_text()), module
    for smk in RULES_DIR.glob("*.smk"):
        assert '"results/' not in smk.read_text(), smk.name
    assert set(layout.CELL_DIRS) == {"bench_cell", "serve_cell", "rpc_cell"}


def test_statuses_are_the_enum_not_literals() -> None:
    """Statuses are compared and written through core/status.py; record schemas take its values."""
    literal = re.compile(r"""\[["']status["']\]\s*[!=]=\s*["'](\w+)["']|status=["'](\w+)["']""")
    for module in modules():
        text = (PACKAGE_DIR / f"{module.replace('.', '/')}.py").read_text()
        found = [m.group(0) for m in literal.finditer(text) if "Status." not in m.group(0)]
        assert not found, (module, found)
    for kind in ("bench_cell", "summary_row", "serving_row", "rpc_row", "smoke"):
        text = yaml.safe_dump(records.schema(kind))
        assert all(status.value in text for status in Status), kind


def test_conda_environment_is_self_contained_and_pins_what_requirements_pin() -> None:
    """Snakemake copies only the env file: an -r include inside it would not resolve."""
    env = yaml.safe_load((ROOT / "envs" / "llamabench.yaml").read_text())
    pip = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    assert not any(line.startswith("-r") for line in pip)
    pinned = [line.split("#")[0].strip() for line in (ROOT / "envs" / "requirements.txt").read_text().splitlines()]
    assert sorted(pip) == sorted(line for line in pinned if line and not line.startswith("-e "))


def test_the_readme_is_a_front_page_that_leads_to_every_topic() -> None:
    """At most 250 lines; every topic page and the config reference are linked, and every link leads somewhere."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    linked = set(re.findall(r"`((?:docs|config|tests)/[\w./-]+\.md)`", text))
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} | {"config/README.md"} <= linked
    assert all((ROOT / path).is_file() for path in linked), linked

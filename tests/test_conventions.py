"""The code base's own conventions, checked so that they survive the next rule someone adds."""

from __future__ import annotations

import ast
import re

import yaml

from conftest import ROOT
from llamabench import code_version, records

RULES_DIR = ROOT / "workflow" / "rules"
PACKAGE_DIR = ROOT / "workflow" / "scripts" / "llamabench"
# Rules that fetch, build, measure or decide what to measure (each writes records of its own kind and
# declares a RULE_VERSION), and rules derived from them (versioned by a hash of their code).
MEASURING = ("source", "hardware", "build", "model", "smoke", "bench_cell", "serve_cell", "rpc_cell", "rpc_smoke",
             "bandwidth", "noisy")
DERIVED = ("summary", "serving_summary", "rpc_summary", "stats", "export", "figures", "report_html")


def rules() -> dict[str, str]:
    """{rule name: its text} for every rule in workflow/rules/."""
    found = {}
    for smk in sorted(RULES_DIR.glob("*.smk")):
        for match in re.finditer(r"^(?:rule|checkpoint) (\w+):\n((?:[ \t]+.*\n|\n)*)", smk.read_text(),
                                 flags=re.MULTILINE):
            found[match.group(1)] = match.group(2)
    return found


def test_a_rule_leads_to_its_file_module_and_function_by_name() -> None:
    """Rule X lives in workflow/rules/X.smk and runs llamabench/X.py's function X, through the one script."""
    assert set(rules()) == {*MEASURING, *DERIVED}
    for name, text in rules().items():
        assert (RULES_DIR / f"{name}.smk").is_file(), name
        module = ast.parse((PACKAGE_DIR / f"{name}.py").read_text())
        assert name in {node.name for node in module.body if isinstance(node, ast.FunctionDef)}, name
        assert "script:\n        RULE_SCRIPT" in text, name
        assert "log:" in text, f"rule {name} has no log"
        assert "version=get_rule_version(" + repr(name).replace("'", '"') + ")" in text, name
    assert [p.name for p in (ROOT / "workflow" / "scripts").glob("*.py")] == ["rule.py"]


def test_each_rule_that_writes_a_record_has_a_schema_of_its_name() -> None:
    for kind in records.KINDS:
        assert records.version(kind) >= 1
    assert set(MEASURING) <= set(records.KINDS)


def test_expensive_rules_declare_a_version_and_the_others_hash_their_code() -> None:
    for name in MEASURING:
        assert isinstance(code_version.rule_version(name), int), name
    for name in DERIVED:
        assert re.fullmatch(r"[0-9a-f]{16}", code_version.rule_version(name)), name
    assert "summary" in code_version.imports_closure("report_html")
    assert "records" in code_version.imports_closure("summary")


def test_conda_environment_is_self_contained_and_pins_what_requirements_pin() -> None:
    """Snakemake copies only the env file: an -r include inside it would not resolve."""
    env = yaml.safe_load((ROOT / "envs" / "llamabench.yaml").read_text())
    pip = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    assert not any(line.startswith("-r") for line in pip)
    pinned = [line.split("#")[0].strip() for line in (ROOT / "envs" / "requirements.txt").read_text().splitlines()]
    assert sorted(pip) == sorted(line for line in pinned if line)

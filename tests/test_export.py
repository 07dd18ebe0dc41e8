"""The llama-bench export: records of two llama.cpp versions, normalised, join on every key property that
upstream's scripts/compare-llama-bench.py compares (read from the script itself)."""

from __future__ import annotations

import ast
import json
import sqlite3
from pathlib import Path
from typing import Any

from conftest import DEFAULT_CONFIG, ROOT
from llamabench import export
from llamabench.core import matrix

DATA = ROOT / "tests" / "data"
# The cell the recorded runs measured (tests/data/README.md): the defaults with flash attention on.
CELL = {**matrix.baseline(DEFAULT_CONFIG["benchmark"]), "flash_attn": "on"}


def recorded(commit: str) -> list[dict[str, Any]]:
    return json.loads((DATA / f"llama-bench-{commit}-cpu-gemma3-270m-fa1.json").read_text())


def upstream_key_properties(source_manifest: dict[str, Any]) -> list[str]:
    script = Path(source_manifest["source_dir"]) / "scripts" / "compare-llama-bench.py"
    for node in ast.parse(script.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "LLAMA_BENCH_KEY_PROPERTIES":
            return ast.literal_eval(node.value)
    raise AssertionError("LLAMA_BENCH_KEY_PROPERTIES not found")


def rows() -> list[dict[str, Any]]:
    return export.one_model_type([
        {**export.normalize(record, CELL), "build": build, "model_sha256": "gemma"}
        for build, commit in [("cpu@0.3.14", "79e0b68"), ("cpu@0.3.36", "0c1e570")] for record in recorded(commit)])


def test_records_of_two_versions_join_on_every_key_property(source_manifest: dict[str, Any]) -> None:
    old, new = [[r for r in rows() if r["build"] == b] for b in ("cpu@0.3.14", "cpu@0.3.36")]
    for a, b in zip(old, new):
        differing = [key for key in upstream_key_properties(source_manifest) if a[key] != b[key]]
        assert differing == [], differing
    assert recorded("79e0b68")[0]["flash_attn"] is True and old[0]["flash_attn"] == new[0]["flash_attn"] == 1
    assert "?" in recorded("79e0b68")[0]["model_type"] and old[0]["model_type"] == "gemma3 270M Q4_K - Medium"


def test_fields_an_older_tree_lacks_get_llama_benchs_defaults_and_its_own_are_dropped() -> None:
    old = recorded("79e0b68")[0]
    row = export.normalize(old, CELL)
    assert "n_cpu_moe" not in old and row["n_cpu_moe"] == 0 and row["load_mode"] == "auto"
    assert "use_mmap" not in row and list(row)[:len(export.FIELDS)] == list(export.FIELDS)
    assert row["samples_ts"] == old["samples_ts"]


def test_a_field_an_older_tree_lacks_takes_the_cells_own_axis_value() -> None:
    """A mid-2025 tree prints use_mmap, never load_mode: the cell's load mode stands in, so its -mmp 0 cell
    joins a current tree's -lm none cell, and its default cell the current default one."""
    old = recorded("79e0b68")[0]
    assert export.normalize(old, {**CELL, "load_mode": "none"})["load_mode"] == "none"
    current = recorded("0c1e570")[0]
    assert export.normalize(current, {**CELL, "load_mode": "none"})["load_mode"] == current["load_mode"]


def test_the_sqlite_table_is_llama_benchs_and_the_per_build_one_has_equal_length_labels(tmp_path: Path) -> None:
    export.write_sqlite(tmp_path / "a.sqlite", rows())
    export.write_sqlite(tmp_path / "b.sqlite", export.by_build(rows()), extra=("source_commit",))
    with sqlite3.connect(tmp_path / "a.sqlite") as db:
        assert [(r[1], r[2]) for r in db.execute("PRAGMA table_info(llama_bench)")] == list(export.FIELDS.items())
        assert db.execute("SELECT COUNT(DISTINCT build_commit), MIN(flash_attn) FROM llama_bench").fetchone() == (2, 1)
    with sqlite3.connect(tmp_path / "b.sqlite") as db:
        labels = dict(db.execute("SELECT DISTINCT build_commit, source_commit FROM llama_bench").fetchall())
    assert set(labels) == {"cpu@0.3.14", "cpu@0.3.36"} and labels["cpu@0.3.14"].startswith("79e0b68")


def test_per_build_labels_are_padded_to_one_length() -> None:
    """compare-llama-bench.py truncates build_commit to the shortest one: labels must not differ in length."""
    labelled = export.by_build([{**row, "build": name} for row, name in zip(rows(), ["cpu", "cpu-rpc"] * 2)])
    assert {row["build_commit"] for row in labelled} == {"cpu____", "cpu-rpc"}

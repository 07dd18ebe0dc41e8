"""core/layout.py: the one owner of the results layout - every record kind's path from its key, and back."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamabench.core import layout


@pytest.mark.parametrize(("kind", "key", "path"), [
    ("bench_cell", {"build": "cpu", "model": "m", "cell": "t2_round-2"}, "results/cells/cpu/m/t2_round-2.json"),
    ("serve_cell", {"build": "cpu", "model": "m", "cell": "c"}, "results/serving/cpu/m/c.json"),
    ("rpc_cell", {"build": "cpu-rpc", "model": "m", "cell": "c"}, "results/rpc/cpu-rpc/m/c.json"),
    ("build", {"build": "cpu+a100"}, "results/builds/cpu+a100/manifest.json"),
    ("rpc_smoke", {"topology": "two-cpu", "model": "m"}, "results/rpc_smoke/two-cpu/m.json"),
    ("remeasure", {}, "results/remeasure.json"),
])
def test_a_kinds_path_and_its_key_are_one_another(kind: str, key: dict, path: str) -> None:
    assert layout.path(kind, **key) == path
    assert layout.parse(kind, path) == key
    assert layout.pattern(kind).format(**key) == path


def test_logs_sit_under_their_rule_with_the_records_key() -> None:
    assert layout.log("bench_cell", build="cpu", model="m", cell="c") == "results/logs/bench_cell/cpu/m/c.log"
    assert layout.log_pattern("build") == "results/logs/build/{build}.log"
    assert layout.log_pattern("summary") == "results/logs/summary.log"
    assert layout.log_pattern("figures") == "results/logs/figures.log"
    assert layout.benchmark("model") == "results/benchmarks/model/{model}.tsv"


def test_kept_versions_are_found_and_labelled(tmp_path: Path) -> None:
    kept = layout.kept_dir("cpu@0c1e570", tmp_path) / "cells" / "m" / "c.json"
    kept.parent.mkdir(parents=True)
    kept.write_text("{}")
    assert layout.kept("bench_cell", tmp_path) == [kept] and layout.kept("serve_cell", tmp_path) == []
    assert layout.kept_label(kept) == "cpu@0c1e570"
    assert layout.kept_label(tmp_path / "cells/cpu/m/c.json") is None
    assert layout.parse("bench_cell", kept) == {"build": "cpu@0c1e570", "model": "m", "cell": "c"}
    assert layout.parse("bench_cell", tmp_path / "elsewhere.json") == {}

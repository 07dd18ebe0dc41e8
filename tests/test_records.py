"""core/records.py: one definition per record kind, checked on write and read; tables typed as their schemas
say on the way back from CSV, so no reader undoes a CSV's guessing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from llamabench.core import axes, records
from llamabench.core.status import Status


def test_row_schemas_take_their_axis_columns_and_statuses_from_the_registries() -> None:
    columns = records.columns("summary_row")
    start = columns.index("threads")
    assert columns[start:start + len(axes.names(axes.BENCHMARK))] == list(axes.names(axes.BENCHMARK))
    assert records.schema("summary_row")["properties"]["status"]["enum"] == [s.value for s in Status]
    params = records.schema("serve_cell")["properties"]["params"]
    assert set(params["properties"]) == set(axes.names(axes.SERVING))
    assert "load_mode" not in params["required"]  # optional: only where set


def test_a_table_comes_back_with_its_schemas_types(tmp_path: Path) -> None:
    rows = [{"build": "cpu", "history": False, "model": "m", "cell": "a", "status": Status.OK, "round": 2,
             "n_gpu_layers": "all", "threads": 2, "avg_ts": 10.5, "op_offload": True, "load_mode": "none"},
            {"build": "cpu", "history": False, "model": "m", "cell": "b", "status": Status.FAILED,
             "n_gpu_layers": 99, "threads": None, "avg_ts": None}]
    table = records.frame([records.new("summary_row", row) for row in rows], "summary_row")
    records.write_table(tmp_path / "t.csv", table)
    back = records.read_table(tmp_path / "t.csv", "summary_row")
    assert str(back["round"].dtype) == "Int64" and str(back["history"].dtype) == "boolean"
    assert back["avg_ts"].dtype == float and pd.isna(back.loc[1, "avg_ts"])
    assert list(back["n_gpu_layers"]) == ["all", 99] and isinstance(back.loc[1, "n_gpu_layers"], int)
    assert back.loc[0, "threads"] == 2 and pd.isna(back.loc[1, "threads"])  # whole numbers stay whole
    assert back.loc[0, "load_mode"] == "none" and back.loc[1, "load_mode"] is None  # "none" is text, not missing
    assert back.loc[0, "status"] == Status.OK and bool(back.loc[0, "op_offload"]) is True
    pd.testing.assert_frame_equal(back, table)


def test_a_table_of_another_version_is_refused(tmp_path: Path) -> None:
    pd.DataFrame({"build": ["cpu"]}).to_csv(tmp_path / "old.csv", index=False)
    with pytest.raises(records.RecordError, match="rerun the rule that writes it"):
        records.read_table(tmp_path / "old.csv", "summary_row")


def test_an_unreadable_cell_is_named_by_its_path() -> None:
    row = records.unreadable("summary_row", "bench_cell", "results/cells/cpu/m/t2_round-2.json",
                             records.RecordError("bad"))
    assert (row["build"], row["model"], row["cell"], row["status"]) == ("cpu", "m", "t2_round-2", "unreadable")


def test_a_json_record_carries_kind_version_and_its_rules_version(tmp_path: Path) -> None:
    path = tmp_path / "remeasure.json"
    records.write(path, "remeasure", {"noisy_cv": 0.05, "max_rounds": 6, "max_share": 0.1, "action": "remeasure",
                                      "decisions": []})
    data = json.loads(path.read_text())
    assert (data["kind"], data["version"]) == ("remeasure", 1)
    assert data["rule_version"] == records.read(path, "remeasure")["rule_version"]

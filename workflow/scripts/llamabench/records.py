"""Every record the workflow writes, defined once: a kind, a version, a JSON schema.

A record is a JSON file under ``results/`` (or a row of ``summary.csv``).
Writers go through :func:`write`, which stamps the kind and version and
validates; readers go through :func:`read`, which refuses a record of another
kind or version with one sentence instead of misreading it. The schemas live in
``workflow/schemas/records/<kind>.schema.yaml``; bump a kind's version there
whenever its meaning or layout changes.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import yaml

from llamabench import files
from llamabench.errors import UserError

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "records"
KINDS = ("source", "build", "model", "smoke", "bench_cell", "serve_cell", "rpc_cell", "rpc_smoke", "bandwidth", "noisy",
         "hardware",
         "summary_row", "serving_row", "rpc_row", "stats_row", "comparison_row")
# Rows of a CSV; every other kind is a JSON file that starts with the common head.
TABLES = ("summary_row", "serving_row", "rpc_row", "stats_row", "comparison_row")


class RecordError(UserError):
    """A record that is not what this code reads: another kind, an older version, or invalid."""


@functools.cache
def schema(kind: str) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}")
    own = yaml.safe_load((SCHEMA_DIR / f"{kind}.schema.yaml").read_text())
    if kind in TABLES:
        return own
    head = yaml.safe_load((SCHEMA_DIR / "head.schema.yaml").read_text())
    properties = dict(own["properties"])
    ordered = {"kind": properties.pop("kind"), "version": properties.pop("version"), **head["properties"], **properties}
    return {**own, "required": head["required"] + own.get("required", []), "properties": ordered}


def version(kind: str) -> int:
    """A JSON record carries its version; a table's version is its schema's ``x-version``."""
    if kind in TABLES:
        return schema(kind)["x-version"]
    return schema(kind)["properties"]["version"]["const"]


def columns(kind: str) -> list[str]:
    """A tabular record's columns, in the schema's order (the CSV's order)."""
    return list(schema(kind)["properties"])


def problems(kind: str, data: Any) -> list[str]:
    """What is wrong with ``data`` as a record of ``kind`` (empty when it is valid)."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema(kind))
    return [f"{'/'.join(map(str, err.absolute_path)) or '(top)'}: {err.message}"
            for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))]


def new(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` as a record of ``kind``, checked against its schema.

    JSON records get the common head: the writing rule's version (the rule has
    the kind's name), when and on which machine the record was made.
    """
    from llamabench import code_version

    if kind in TABLES:
        record = {column: plain(fields.get(column)) for column in columns(kind)}
    else:
        record = {"kind": kind, "version": version(kind), "rule_version": code_version.rule_version(kind),
                  "created": files.now_iso(), "host": files.host_info(), **fields}
    if found := problems(kind, record):
        raise ValueError(f"a {kind} record being made is invalid: {'; '.join(found[:5])}")
    return record


def plain(value: Any) -> Any:
    """A table cell as JSON knows it: numpy scalars as Python numbers, NaN as null."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write(path: Path, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    record = new(kind, fields)
    files.write_json(path, record)
    return record


def read(path: Path, kind: str) -> dict[str, Any]:
    """The record at ``path``, which must be a valid ``kind`` record of this code's version."""
    try:
        data = files.read_json(path)
    except (OSError, ValueError) as err:
        raise RecordError(f"{path} is not a readable record: {err}") from err
    found_kind = data.get("kind") if isinstance(data, dict) else None
    if found_kind != kind:
        raise RecordError(f"{path} is a {found_kind or 'unnamed'} record, not a {kind} record")
    if data.get("version") != version(kind):
        raise RecordError(
            f"{path} is a {kind} record of version {data.get('version')}, this code reads version {version(kind)}: "
            f"rerun the job that writes it (snakemake --forcerun {path})"
        )
    if found := problems(kind, data):
        raise RecordError(f"{path} is not a valid {kind} record: {'; '.join(found[:5])}")
    return data


def read_table(path: Path, kind: str) -> Any:
    """A CSV of ``kind`` rows, which must have exactly the columns of this code's version."""
    import pandas as pd

    frame = pd.read_csv(path)
    if list(frame.columns) != columns(kind):
        raise RecordError(f"{path} does not have the columns of a {kind} table (version {version(kind)}): "
                          "rerun the rule that writes it")
    return frame


def write_table(path: Path, frame: Any) -> None:
    with files.atomic_path(Path(path)) as tmp:
        frame.to_csv(tmp, index=False)


def unreadable(kind: str, path: Path, err: RecordError) -> dict[str, Any]:
    """The table row of a cell file that could not be read: all a bad record leaves is its path
    (``results/<kind of cell>/<build>/<model>/<cell>.json``)."""
    return new(kind, {"build": path.parent.parent.name, "history": False, "model": path.parent.name,
                      "cell": path.stem, "status": "unreadable", "error": str(err)})

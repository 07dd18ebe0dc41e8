"""Every record the workflow writes, defined once: a kind, a version, a JSON schema.

A record is a JSON file under ``results/`` or a row of one of its tables (CSV).
Writers go through :func:`write` / :func:`write_table`, which stamp the kind and
version and validate; readers go through :func:`read` / :func:`read_table`, which
refuse a record of another kind or version with one sentence instead of
misreading it, and give a table its schema's types (integers stay integers, a
missing value is missing, ``n_gpu_layers`` is 99 or ``all``), so no reader has to
undo a CSV's guessing. The schemas live in ``workflow/schemas/records/<kind>.schema.yaml``;
a row schema's ``x-axes`` entry stands for the axis columns of that kind of cell
(core/axes.py), ``x-params`` for a cell record's parameters, ``x-status`` for the status
vocabulary (core/status.py), and a ``$ref`` into ``vocabulary.schema.yaml`` for an enum generated from a registry
(core/vocabulary.py: finding questions, comparison kinds, metrics). Bump a
kind's version there whenever its meaning or layout changes.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from llamabench.core import axes, files, layout, status
from llamabench.core.errors import UserError

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas" / "records"
KINDS = ("source", "build", "model", "smoke", "bench_cell", "serve_cell", "rpc_cell", "rpc_smoke", "bandwidth",
         "remeasure", "tune_round", "tune", "load_pilot", "load_sweep", "probe_build", "bisect_step", "bisect_study",
         "history_range", "history_study", "quality_text", "quality_cell", "perplexity_build",
         "hardware", "summary_row", "serving_row", "rpc_row", "stats_row", "metric_row", "comparison_row",
         "finding_row", "memory_row", "quality_row", "turn_row")
# Rows of a CSV; every other kind is a JSON file that starts with the common head.
TABLES = ("summary_row", "serving_row", "rpc_row", "stats_row", "metric_row", "comparison_row", "finding_row",
          "memory_row", "quality_row", "turn_row")
# The build and model record fields a cell keeps, under the same names: what explains its numbers.
BUILD_FACTS = ("name", "commit", "build_number", "options", "compiler", "cmake", "cache_key", "devices")
MODEL_FACTS = ("name", "sha256", "size_bytes", "gguf", "origin")


class RecordError(UserError):
    """A record that is not what this code reads: another kind, an older version, or invalid."""


def present(value: Any) -> bool:
    """Whether a table cell holds a value: a missing one reads back as None, or as NaN through pandas. Here, not
    in derive/tables.py: measuring rules read it too (a quality budget), and the table vocabulary is not theirs."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def value_or(value: Any, default: Any = None) -> Any:
    """A table cell's value, ``default`` where it holds none (None or NaN)."""
    return value if present(value) else default


@functools.cache
def schema(kind: str) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}")
    own = _expand(yaml.safe_load((SCHEMA_DIR / f"{kind}.schema.yaml").read_text()))
    if kind in TABLES:
        return own
    head = yaml.safe_load((SCHEMA_DIR / "head.schema.yaml").read_text())
    properties = dict(own["properties"])
    ordered = {"kind": properties.pop("kind"), "version": properties.pop("version"), **head["properties"], **properties}
    return {**own, "required": head["required"] + own.get("required", []), "properties": ordered}


def _expand(node: Any) -> Any:
    """The schema with ``x-axes`` replaced by the axis columns and ``x-status`` given the status enum."""
    if isinstance(node, list):
        return [_expand(item) for item in node]
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$ref"), str) and not node["$ref"].startswith("#"):
        return _expand({**_referenced(node["$ref"]), **{key: value for key, value in node.items() if key != "$ref"}})
    if "x-status" in node:
        return {key: value for key, value in node.items() if key != "x-status"} | {"enum": status.values()}
    if "x-params" in node:
        kind = node["x-params"]
        return {"type": "object", "description": node.get("description", ""),
                "required": [a.name for a in axes.of(kind) if not axes.optional(a.name, kind)],
                "properties": {a.name: a.schema for a in axes.of(kind)}, "additionalProperties": False}
    found: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict) and "x-axes" in value:
            found.update(axes.columns(value["x-axes"]))
        else:
            found[key] = _expand(value)
    return found


@functools.cache
def _referenced(ref: str) -> dict[str, Any]:
    """What a ``$ref`` into another schema file beside the row schemas points to (the generated vocabularies:
    core/vocabulary.py), inlined so that a schema validates on its own."""
    file, _, pointer = ref.partition("#")
    target = yaml.safe_load((SCHEMA_DIR / file).read_text())
    for part in pointer.strip("/").split("/"):
        target = target[part]
    return target


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


def new(kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` as a record of ``kind``, checked against its schema.

    JSON records get the common head: the writing rule's version (the rule has
    the kind's name), when and on which machine the record was made.
    """
    from llamabench.core import code_version

    if kind in TABLES:
        record = {column: plain(fields.get(column)) for column in columns(kind)}
    else:
        record = {"kind": kind, "version": version(kind), "rule_version": code_version.rule_version(kind),
                  "created": files.now_iso(), "host": files.host_info(), **fields}
    if found := problems(kind, record):
        raise ValueError(f"a {kind} record being made is invalid: {'; '.join(found[:5])}")
    return record


def plain(value: Any) -> Any:
    """A table cell as JSON knows it: numpy and pandas scalars as Python values, NaN and NA as null."""
    if _missing(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    return value


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(value)) if not isinstance(value, (list, dict, tuple)) else False
    except (TypeError, ValueError):
        return isinstance(value, float) and math.isnan(value)


def write(path: str | Path, kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    record = new(kind, fields)
    files.write_json(Path(path), record)
    return record


def read(path: str | Path, kind: str) -> dict[str, Any]:
    """The record at ``path``, which must be a valid ``kind`` record of this code's version."""
    try:
        data = files.read_json(Path(path))
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


def read_each(paths: Iterable[str | Path], kind: str | Callable[[str], str],
              ) -> dict[Path, dict[str, Any] | RecordError]:
    """{path: its record, or why it cannot be read} for each of ``paths`` (each once): the edge where studies'
    cells are read, so their decisions (derive/) take records and can say which one was unreadable. ``kind``: the
    record kind, or a function of the path giving it."""
    found: dict[Path, dict[str, Any] | RecordError] = {}
    for path in map(Path, paths):
        try:
            found[path] = read(path, kind if isinstance(kind, str) else kind(str(path)))
        except RecordError as err:
            found[path] = err
    return found


def readable(found: Mapping[Path, dict[str, Any] | RecordError]) -> list[dict[str, Any]]:
    """The records of a ``read_each``, without those that could not be read."""
    return [record for record in found.values() if not isinstance(record, RecordError)]


def read_table(path: str | Path, kind: str) -> Any:
    """A CSV of ``kind`` rows, with exactly the columns of this code's version, typed as its schema says."""
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    if list(frame.columns) != columns(kind):
        raise RecordError(f"{path} does not have the columns of a {kind} table (version {version(kind)}): "
                          "rerun the rule that writes it")
    return typed(frame, kind)


def frame(rows: Iterable[Mapping[str, Any]], kind: str) -> Any:
    """Rows of ``kind`` as a table typed like one read back from its CSV."""
    import pandas as pd

    return typed(pd.DataFrame(list(rows), columns=columns(kind)), kind)


def typed(table: Any, kind: str) -> Any:
    """Each column of ``table`` as its schema's type: Int64, float64, boolean, or objects (text; a union of
    integer and text, such as n_gpu_layers, keeps each value's own type), missing values missing."""
    import pandas as pd

    out = {}
    for column, prop in schema(kind)["properties"].items():
        types = _types(prop)
        values = table[column]
        if types == {"integer"}:
            out[column] = pd.array([None if _missing(v) else int(float(v)) for v in values], dtype="Int64")
        elif types == {"number"}:
            out[column] = pd.to_numeric(values.astype(object).where(values.notna(), None)).astype("float64")
        elif types == {"boolean"}:
            out[column] = pd.array([None if _missing(v) else v in (True, "True", "true", 1, "1") for v in values],
                                   dtype="boolean")
        else:
            out[column] = pd.Series([_text_or_int(v, "integer" in types) for v in values], dtype=object)
    return pd.DataFrame(out, index=table.index)


def _types(prop: Mapping[str, Any]) -> set[str]:
    if "enum" in prop:
        return {"string"}
    found = prop.get("type", "string")
    return set([found] if isinstance(found, str) else found) - {"null"}


def _text_or_int(value: Any, integers: bool) -> Any:
    """A text cell, or in a column that takes integers too (``n_gpu_layers``: 99 or ``all``) an integer where
    the value is one."""
    if _missing(value):
        return None
    if integers and not isinstance(value, bool) and re.fullmatch(r"-?\d+(\.0*)?", str(value)):
        return int(float(value))
    return str(value)


def write_table(path: str | Path, table: Any) -> None:
    with files.atomic_path(Path(path)) as tmp:
        table.to_csv(tmp, index=False)


def unreadable(kind: str, cell_kind: str, path: str | Path, err: RecordError) -> dict[str, Any]:
    """The table row of a cell file that could not be read: all a bad record leaves is its key, from its path."""
    key = layout.parse(cell_kind, path)
    return new(kind, {"build": key.get("build"), "history": False, "model": key.get("model"),
                      "cell": key.get("cell"), "status": status.Status.UNREADABLE, "error": str(err)})


def cell_head(cell: Any, seed: int) -> dict[str, Any]:
    """What every cell record starts with: its id, its id without the round, the round and its place in it, the
    seed of the rounds' order, the padding of its processes' environment, and the tuning study or load sweep it
    belongs to (none for a grid's, a scenario's or an RPC cell). ``cell`` is the plan's (core/plan.py ``Cell``)."""
    head = {"cell": cell.id, "base_cell": cell.base, "round": cell.round, "seed": seed,
            "round_position": cell.position, "setup_pad": cell.setup_pad(seed)}
    return {**head, "study": cell.study} if cell.study else head


def cell_facts(build: Mapping[str, Any], model: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The build and model record fields a cell keeps, under their own names."""
    return {"build": {**{key: build[key] for key in BUILD_FACTS},
                      **{key: build.get(key) for key in ("backend", "software_device")}},
            "model": {key: model[key] for key in MODEL_FACTS}}


def read_build(path: str | Path) -> dict[str, Any] | None:
    """A job's build: a configured build's record, or a probe's (a commit of a bisect or history study; None where
    it did not build)."""
    if layout.parse("probe_build", str(path)):
        return read(path, "probe_build")["built"]
    return read(path, "build")

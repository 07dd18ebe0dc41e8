"""Every successful llama-bench record, in llama-bench's own formats: JSONL and its SQLite table.

So that llama.cpp's tools read the workflow's results, e.g. upstream's
``scripts/compare-llama-bench.py -i results/llama-bench.sqlite -b <commit> -c <commit>``.
That script joins two commits' rows only where every key property is equal,
so records of older trees are normalised to the current schema: fields they
lack get the cell's own value where they are an axis (core/axes.py ``json_field``:
``load_mode`` of a mid-2025 tree is the cell's load mode) and llama-bench's
defaults otherwise, fields renamed or retyped since get one spelling, and a model gets one
``model_type`` (older trees print ``?B`` for sizes they do not know). Benchmark cells only: RPC cells are
another experiment.

``llama-bench-builds.sqlite`` is the same table with ``build_commit`` replaced
by a per-build label of equal length (the real one kept in ``source_commit``): the
script tells runs apart by ``build_commit`` only, so two builds of one commit
(cpu vs cpu-rpc, or one tree built with different flags) need it.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from llamabench.core import axes, files, history
from llamabench.core.records import RecordError
from llamabench.core.status import Status

# llama-bench's llama_bench table (tools/llama-bench/llama-bench.cpp at 0c1e570, the default
# source: test::get_fields and get_field_type), in its column order, with SQLite types.
FIELDS: dict[str, str] = {
    "build_commit": "TEXT", "build_number": "INTEGER", "cpu_info": "TEXT", "gpu_info": "TEXT", "backends": "TEXT",
    "model_filename": "TEXT", "model_type": "TEXT", "model_size": "INTEGER", "model_n_params": "INTEGER",
    "n_batch": "INTEGER", "n_ubatch": "INTEGER", "n_threads": "INTEGER", "cpu_mask": "TEXT", "cpu_strict": "INTEGER",
    "poll": "INTEGER", "type_k": "TEXT", "type_v": "TEXT", "n_gpu_layers": "INTEGER", "n_cpu_moe": "INTEGER",
    "split_mode": "TEXT", "main_gpu": "INTEGER", "no_kv_offload": "INTEGER", "flash_attn": "INTEGER",
    "devices": "TEXT", "tensor_split": "TEXT", "tensor_buft_overrides": "TEXT", "load_mode": "TEXT",
    "lazy_mode": "TEXT", "embeddings": "INTEGER", "no_op_offload": "INTEGER", "no_host": "INTEGER",
    "repack": "INTEGER", "fit_target": "INTEGER", "fit_min_ctx": "INTEGER", "n_prompt": "INTEGER",
    "n_gen": "INTEGER", "n_depth": "INTEGER", "test_time": "TEXT", "avg_ns": "INTEGER", "stddev_ns": "INTEGER",
    "avg_ts": "REAL", "stddev_ts": "REAL",
}
# Its cmd_params_defaults for the fields older trees do not print and no axis gives.
DEFAULTS: dict[str, Any] = {
    "n_cpu_moe": 0, "devices": "auto", "lazy_mode": "auto", "embeddings": False, "no_host": False, "repack": True,
    "fit_target": 0, "fit_min_ctx": 0,
}
# The per-repetition samples: in the JSON formats, not in the table.
SAMPLES = ("samples_ns", "samples_ts")


def export(smk: Any) -> None:
    """Rule ``export``: results/llama-bench.jsonl, llama-bench.sqlite and llama-bench-builds.sqlite."""
    rows = collect(history.current_and_kept(smk.input.cells, "bench_cell", Path(smk.output.sqlite).parent))
    write_jsonl(Path(smk.output.jsonl), rows)
    write_sqlite(Path(smk.output.sqlite), rows)
    write_sqlite(Path(smk.output.builds_sqlite), by_build(rows), extra=("source_commit",))


def collect(cell_paths: list[Path]) -> list[dict[str, Any]]:
    """The normalised llama-bench rows of every successful cell, each with its build label beside it."""
    rows = []
    for path in sorted(cell_paths):
        try:
            cell = history.read(path, "bench_cell")
        except RecordError:
            continue  # listed as unreadable in the summary; nothing to export
        if cell["llama_bench"]["status"] != Status.OK:
            continue
        for record in cell["llama_bench"]["records"]:
            rows.append({**normalize(record, cell["params"]), "build": cell["build"]["name"],
                         "model_sha256": cell["model"]["sha256"]})
    return one_model_type(rows)


def normalize(record: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """One llama-bench record in the current schema (field order, defaults, one spelling per value); a field
    this tree does not print takes the cell's value where it is an axis."""
    own = {axis.json_field: axes.value(params, axis.name) for axis in axes.of(axes.BENCHMARK) if axis.json_field}
    row = {field: record.get(field, own.get(field, DEFAULTS.get(field))) for field in FIELDS}
    if isinstance(row["flash_attn"], bool):  # mid-2025 trees print true/false, later ones -1/0/1
        row["flash_attn"] = int(row["flash_attn"])
    # Older trees list RPC among the backends whenever it is compiled in; a benchmark cell never uses it.
    backends = [b for b in str(row["backends"]).split(",") if b and b != "RPC"]
    row["backends"] = ",".join(backends) or "CPU"
    row.update({key: record[key] for key in SAMPLES if key in record})
    return row


def one_model_type(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One ``model_type`` per model file: the spelling without unknown sizes (``?B``), else the commonest."""
    spellings: dict[str, Counter] = {}
    for row in rows:
        spellings.setdefault(row["model_sha256"], Counter())[row["model_type"]] += 1
    chosen = {sha: max(counts, key=lambda name: ("?" not in str(name), counts[name], str(name)))
              for sha, counts in spellings.items()}
    return [{**row, "model_type": chosen[row["model_sha256"]]} for row in rows]


def by_build(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``build_commit`` := the build's label, padded with ``_`` to one length; the real commit in ``source_commit``."""
    width = max((len(row["build"]) for row in rows), default=0)
    return [{**row, "source_commit": row["build_commit"], "build_commit": row["build"].ljust(width, "_")}
            for row in rows]


def write_jsonl(target: Path, rows: list[dict[str, Any]]) -> None:
    with files.atomic_path(target) as tmp:
        tmp.write_text("".join(json.dumps({key: row[key] for key in [*FIELDS, *SAMPLES] if key in row}) + "\n"
                               for row in rows))


def write_sqlite(target: Path, rows: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> None:
    """llama-bench's table (as ``-o sql | sqlite3`` creates it), plus ``extra`` TEXT columns."""
    columns = {**FIELDS, **{name: "TEXT" for name in extra}}
    with files.atomic_path(target) as tmp:
        connection = sqlite3.connect(tmp)
        try:
            connection.execute(f"CREATE TABLE llama_bench ({', '.join(f'{n} {t}' for n, t in columns.items())})")
            connection.executemany(
                f"INSERT INTO llama_bench ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                [[sql_value(row[name]) for name in columns] for row in rows])
            connection.commit()
        finally:
            connection.close()


def sql_value(value: Any) -> Any:
    """Booleans as llama-bench's SQL output stores them (0/1)."""
    return int(value) if isinstance(value, bool) else value

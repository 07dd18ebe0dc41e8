"""The results layout, owned here: every record kind's path, from its key.

Rules take their output and log patterns from here, input functions and
checkpoints their paths, history and the summaries the places they read, and a
record that cannot be read is named by parsing its path here. Nothing else
spells ``results/cells/...``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

RESULTS = "results"

# Record kind (or output name) -> its path under results/, with its key as {placeholders}.
PATHS: dict[str, str] = {
    "source": "sources/{source}/manifest.json",
    "hardware": "hardware/{platform}.json",
    "build": "builds/{build}/manifest.json",
    "build_bin": "builds/{build}/bin",
    "perplexity_build": "builds/{build}/perplexity.json",
    "model": "models/{model}/manifest.json",
    "model_file": "models/{model}/model.gguf",
    "smoke": "smoke/{build}/{model}.json",
    "bench_cell": "cells/{build}/{model}/{cell}.json",
    "serve_cell": "serving/{build}/{model}/{cell}.json",
    "rpc_cell": "rpc/{build}/{model}/{cell}.json",
    "rpc_smoke": "rpc_smoke/{topology}/{model}.json",
    "tune_cell": "tune/{study}/cells/{build}/{model}/{cell}.json",
    "tune_serve_cell": "tune/{study}/serving/{build}/{model}/{cell}.json",
    "tune_round": "tune/{study}/rounds/{build}/{model}/round-{round}.json",
    "tune": "tune/{study}.json",
    "load_pilot": "load/{sweep}/pilot/{build}/{model}.json",
    "load_cell": "load/{sweep}/cells/{build}/{model}/{cell}.json",
    "load_sweep": "load/{sweep}.json",
    "load_tokens": "load/{sweep}/tokens.jsonl",
    "load_png": "load/{sweep}.png",
    "load_svg": "load/{sweep}.svg",
    "load_turns_png": "load/{sweep}/turns.png",
    "load_turns_svg": "load/{sweep}/turns.svg",
    "serving_tokens": "serving_tokens.jsonl",
    "probe_build": "probes/{source}/{build}/{commit}/manifest.json",
    "probe_bin": "probes/{source}/{build}/{commit}/bin",
    "bisect_step": "bisect/{study}/steps/step-{step}.json",
    "bisect_cell": "bisect/{study}/cells/probe-{probe}/{commit}/{model}/{cell}.json",
    "bisect_study": "bisect/{study}.json",
    "bisect_png": "bisect/{study}.png",
    "bisect_svg": "bisect/{study}.svg",
    "history_range": "history-studies/{study}/range.json",
    "history_cell": "history-studies/{study}/cells/{commit}/{model}/{cell}.json",
    "history_study": "history-studies/{study}.json",
    "history_png": "history-studies/{study}.png",
    "history_svg": "history-studies/{study}.svg",
    "quality_text": "quality/text.json",
    "quality_text_file": "quality/text.txt",
    "quality_reference": "quality/{build}/{model}/reference.json",
    "quality_logits": "quality/{build}/{model}/reference.kld",
    "quality_cell": "quality/{build}/{model}/cells/{cell}.json",
    "quality_summary": "quality.csv",
    "quality_png": "quality/frontier.png",
    "quality_svg": "quality/frontier.svg",
    "bandwidth": "bandwidth.json",
    "remeasure": "remeasure.json",
    "summary": "summary.csv",
    "failed_cells": "failed_cells.txt",
    "stats": "stats.csv",
    "metrics": "metrics.csv",
    "comparisons": "comparisons.csv",
    "serving_summary": "serving_summary.csv",
    "serving_turns": "serving_turns.csv",
    "failed_serving_cells": "failed_serving_cells.txt",
    "rpc_summary": "rpc_summary.csv",
    "failed_rpc_cells": "failed_rpc_cells.txt",
    "findings": "findings.csv",
    "memory_table": "memory.csv",
    "figures_table_csv": "figures_table.csv",
    "figures_table_md": "figures_table.md",
    "figure_png": "figures/{name}.png",
    "figure_svg": "figures/{name}.svg",
    "export_jsonl": "llama-bench.jsonl",
    "export_sqlite": "llama-bench.sqlite",
    "export_builds_sqlite": "llama-bench-builds.sqlite",
    "report_html": "report.html",
    "snakemake_report": "snakemake-report.html",
}

# The cell kinds: record kind -> its directory (and the rule that writes it, of the same name).
CELL_DIRS = {"bench_cell": "cells", "serve_cell": "serving", "rpc_cell": "rpc"}
HISTORY = "history"


def pattern(kind: str, root: str | Path = RESULTS) -> str:
    """``results/cells/{build}/{model}/{cell}.json``: a rule's output pattern."""
    return f"{root}/{PATHS[kind]}"


def path(kind: str, root: str | Path = RESULTS, **key: Any) -> str:
    return pattern(kind, root).format(**key)


def log(rule: str, root: str | Path = RESULTS, **key: Any) -> str:
    """A rule's log: ``results/logs/<rule>/<key parts>.log`` (the rule's record path, under logs/<rule>)."""
    if not _placeholders(rule):
        return f"{root}/logs/{rule}.log"
    return f"{root}/logs/{rule}/{_key_path(rule, key)}.log"


def log_pattern(rule: str, root: str | Path = RESULTS) -> str:
    return log(rule, root, **{name: "{" + name + "}" for name in _placeholders(rule)})


def benchmark(rule: str, root: str | Path = RESULTS) -> str:
    """Snakemake's ``benchmark:`` file of a costly rule."""
    return f"{root}/benchmarks/{rule}/{_key_path(rule, {n: '{' + n + '}' for n in _placeholders(rule)})}.tsv"


def _placeholders(kind: str) -> list[str]:
    return re.findall(r"{(\w+)}", PATHS.get(kind, ""))


def _key_path(kind: str, key: dict[str, Any]) -> str:
    """The key parts of a record kind as a path: build/model/cell."""
    return "/".join(str(key[name]) for name in _placeholders(kind))


def parse(kind: str, found: str | Path) -> dict[str, str]:
    """The key of a record from its path: {build, model, cell} of a cell, and so on; a kept cell's build is its
    history label (``history/<build>@<commit>/cells/<model>/<cell>.json``). Empty where the path is not one."""
    text = Path(found).as_posix()
    patterns = [PATHS[kind]]
    if kind in CELL_DIRS:
        patterns.append(f"{HISTORY}/{{build}}/{CELL_DIRS[kind]}/{{model}}/{{cell}}.json")
    for candidate in reversed(patterns):
        regex = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(candidate))
        if match := re.search(f"(?:^|/){regex}$", text):
            return match.groupdict()
    return {}


def cell_dir(kind: str, root: str | Path = RESULTS) -> Path:
    return Path(root) / CELL_DIRS[kind]


def kept_dir(label: str, root: str | Path = RESULTS) -> Path:
    """Where a version's records are kept: ``results/history/<build>@<commit>/``."""
    return Path(root) / HISTORY / label


def kept(kind: str, root: str | Path = RESULTS) -> list[Path]:
    """Every kept record of a cell kind, in a stable order."""
    return sorted((Path(root) / HISTORY).glob(f"*/{CELL_DIRS[kind]}/*/*.json"))


def kept_label(found: str | Path) -> str | None:
    """The history label of a kept record's path, or None for a current one."""
    parts = Path(found).parts  # .../history/<label>/<dir>/<model>/<record>.json
    return parts[-4] if len(parts) >= 5 and parts[-5] == HISTORY else None

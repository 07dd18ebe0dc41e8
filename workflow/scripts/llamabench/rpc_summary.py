"""RPC cells -> one row each, beside the single-node partner measured in the same run.

The partner is the RPC cell of the same client build, parameters, topology and
link rate with ``-dev none``: the client on its local CPU only. For netns links,
bytes per token and the link rate give the bandwidth-bound ceiling on tg: the
link's rate over the bytes its busiest direction carried per generated token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from llamabench.core import files, history, matrix, metrics, options, records
from llamabench.core.records import RecordError
from llamabench.core.status import Status
from llamabench.derive import samples, tables


def rpc_summary(smk: Any) -> None:
    """Rule ``rpc_summary``: results/rpc_summary.csv."""
    paths = history.current_and_kept(smk.input.cells, "rpc_cell", Path(smk.output.csv).parent)
    table = summarize(paths, smk.params.max_share)
    records.write_table(Path(smk.output.csv), table)
    files.write_lines(Path(smk.output.failed), tables.failed_paths("rpc_cell", smk.input.cells, table))


def summarize(cell_paths: list[Path], max_share: float = 1.0) -> pd.DataFrame:
    cells, rows = [], []
    for path in sorted(cell_paths):
        try:
            cells.append(history.read(path, "rpc_cell"))
        except RecordError as err:
            rows.append(history.unreadable("rpc_row", "rpc_cell", path, err))
    by_key = {partner_key(c): c for c in cells}
    for cell in cells:
        partner = by_key.get(partner_key(cell, devices="none"))
        row = cell_row(cell, speeds(cell), speeds(partner) if partner else {}, max_share)
        row["local_cell"] = partner.get("base_cell", partner["cell"]) if partner else None
        rows.append(row)
    return records.frame(rows, "rpc_row")


def partner_key(cell: dict[str, Any], devices: str | None = None) -> tuple:
    """What a cell and its ``-dev none`` partner of the same round share."""
    return (cell["build"]["name"], cell["model"]["name"], cell["topology"], cell["link_rate"],
            matrix.cell_id(cell["params"]), cell.get("round", 1), devices or cell["devices"])


def speeds(cell: dict[str, Any]) -> dict[str, float]:
    """{"pp": (mean, stddev), "tg": ...} from the cell's llama-bench records."""
    run = cell["rpc"]["llama_bench"]
    if not Status(cell["rpc"]["status"]).measured or not run:
        return {}
    return {kind: (rec["avg_ts"], rec["stddev_ts"]) for rec in run["records"]
            if (kind := metrics.test_kind(metrics.test_of(rec))) in metrics.SINGLE}


def cell_row(cell: dict[str, Any], own: dict[str, tuple], local: dict[str, tuple], max_share: float = 1.0,
             ) -> dict[str, Any]:
    run, params = cell["rpc"], cell["params"]
    devices = run["rpc_devices"]
    names = {endpoint: name for name, endpoint in devices.items()}
    window = (run["llama_bench"] or {}).get("interference")
    disturbance = samples.disturbed(run["llama_bench"], max_share)
    row: dict[str, Any] = {
        "build": cell["build"]["name"], "history": cell.get("history", False), "model": cell["model"]["name"],
        "software_device": cell["build"].get("software_device"), "cell": cell["cell"],
        "base_cell": cell.get("base_cell", cell["cell"]), "round": cell.get("round", 1),
        "status": Status.DISTURBED if run["status"] == Status.OK and disturbance else run["status"],
        "disturbance": disturbance, "others_share": (window or {}).get("others_share"),
        "topology": cell["topology"], "link_rate": cell["link_rate"],
        "devices": cell["devices"],
        "workers_used": 0 if cell["devices"] == "none" else cell["devices"].count("RPC"),
        "workers": "; ".join(f"{names.get(w['address'], '?')}={w['kind']} {w['address']} {w['device'] or 'all'}"
                             for w in run["workers"]) or None,
        "cache": any(w["cache"] for w in run["workers"]) if run["workers"] else None,
        "threads": params["threads"], "n_prompt": params["n_prompt"], "n_gen": params["n_gen"],
        "hostname": cell["host"]["hostname"], "commit": cell["build"]["commit"], "error": run["error"],
        "command_line": (run["llama_bench"] or {}).get("command_line"),
    }
    for test in metrics.SINGLE:
        if test in own:
            row[f"{test}_ts"], row[f"{test}_stddev_ts"] = own[test]
        if test in local:
            row[f"local_{test}_ts"] = local[test][0]
            if test in own:
                row[f"{test}_ratio_to_local"] = own[test][0] / local[test][0]
    traffic = run["traffic"]
    if traffic:
        megabyte = 1e6
        row["load_mb"] = traffic["load_bytes"] / megabyte
        for key, column in [("bytes_per_prompt_token", "mb_per_prompt_token"),
                            ("bytes_per_generated_token", "mb_per_generated_token")]:
            row[column] = traffic[key] / megabyte if traffic[key] is not None else None
        bits = options.rate_bits(cell["link_rate"])
        busiest = traffic["max_link_bytes_per_generated_token"]
        if bits and busiest and row["workers_used"]:  # the local partner sends nothing that limits it
            row["link_ceiling_tg_ts"] = bits / 8 / busiest
            if row.get("tg_ts"):
                row["tg_fraction_of_ceiling"] = row["tg_ts"] / row["link_ceiling_tg_ts"]
    row.update(energy(run))
    return records.new("rpc_row", row)


def energy(run: dict[str, Any]) -> dict[str, Any]:
    """GPU joules per prompt and per generated token and the cell's peak VRAM, where the GPUs were sampled."""
    bench = run["llama_bench"] or {}
    sampled = bench.get("samples") or {}
    found: dict[str, Any] = {"peak_vram_mib": samples.peak_vram(sampled)}
    for rec in bench.get("records", []) if Status(run["status"]).measured else []:
        kind = metrics.test_kind(metrics.test_of(rec))
        if kind in metrics.SINGLE:
            found[f"{kind}_j_per_token"] = samples.energy_columns(sampled, rec)["energy_j_per_token"]
    return found

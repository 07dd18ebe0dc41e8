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

from llamabench import history, matrix, records, rpc_workers, sampler, summary
from llamabench.records import RecordError


def rpc_summary(smk: Any) -> None:
    """Rule ``rpc_summary``: results/rpc_summary.csv."""
    cells = [Path(p) for p in smk.input.cells]
    kept = history.kept(Path(smk.output.csv).parent, "rpc")
    table = summarize(cells + kept)
    records.write_table(Path(smk.output.csv), table)
    summary.write_failed(Path(smk.output.failed), cells, table)


def summarize(cell_paths: list[Path]) -> pd.DataFrame:
    cells, rows = [], []
    for path in sorted(cell_paths):
        try:
            cells.append(history.read(path, "rpc_cell"))
        except RecordError as err:
            rows.append(history.unreadable("rpc_row", path, err))
    measured = {partner_key(c): speeds(c) for c in cells}
    for cell in cells:
        local = measured.get(partner_key(cell, devices="none"), {})
        rows.append(cell_row(cell, measured[partner_key(cell)], local))
    return pd.DataFrame(rows, columns=records.columns("rpc_row"))


def partner_key(cell: dict[str, Any], devices: str | None = None) -> tuple:
    return (cell["build"]["name"], cell["model"]["name"], cell["topology"], cell["link_rate"],
            matrix.cell_id(cell["params"]), devices or cell["devices"])


def speeds(cell: dict[str, Any]) -> dict[str, float]:
    """{"pp": (mean, stddev), "tg": ...} from the cell's llama-bench records."""
    run = cell["rpc"]["llama_bench"]
    if cell["rpc"]["status"] != "ok" or not run:
        return {}
    found = {}
    for rec in run["records"]:
        test = summary.test_name(int(rec.get("n_prompt", 0)), int(rec.get("n_gen", 0)))
        if "+" not in test:
            found[test[:2]] = (rec["avg_ts"], rec["stddev_ts"])
    return found


def cell_row(cell: dict[str, Any], own: dict[str, tuple], local: dict[str, tuple]) -> dict[str, Any]:
    run, params = cell["rpc"], cell["params"]
    devices = run["rpc_devices"]
    names = {endpoint: name for name, endpoint in devices.items()}
    row: dict[str, Any] = {
        "build": cell["build"]["name"], "history": cell.get("history", False), "model": cell["model"]["name"],
        "cell": cell["cell"], "status": run["status"], "topology": cell["topology"], "link_rate": cell["link_rate"],
        "devices": cell["devices"],
        "workers_used": 0 if cell["devices"] == "none" else cell["devices"].count("RPC"),
        "workers": "; ".join(f"{names.get(w['address'], '?')}={w['kind']} {w['address']} {w['device'] or 'all'}"
                             for w in run["workers"]) or None,
        "cache": any(w["cache"] for w in run["workers"]) if run["workers"] else None,
        "threads": params["threads"], "n_prompt": params["n_prompt"], "n_gen": params["n_gen"],
        "hostname": cell["host"]["hostname"], "commit": cell["build"]["commit"], "error": run["error"],
        "command_line": (run["llama_bench"] or {}).get("command_line"),
    }
    for test in ("pp", "tg"):
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
        bits = rpc_workers.rate_bits(cell["link_rate"])
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
    samples = bench.get("samples") or {}
    found: dict[str, Any] = {"peak_vram_mib": sampler.peak_vram(samples)}
    for rec in bench.get("records", []) if run["status"] == "ok" else []:
        test = summary.test_name(int(rec.get("n_prompt", 0)), int(rec.get("n_gen", 0)))
        if "+" not in test:
            found[f"{test[:2]}_j_per_token"] = summary.energy_columns(samples, rec)["energy_j_per_token"]
    return found


def rpc_vs_local(table: pd.DataFrame) -> pd.DataFrame:
    """Figures-table rows: per client build, model and topology, the best RPC tg against the local partner."""
    ok = table[(table["status"] == "ok") & (table["devices"] != "none")].dropna(subset=["tg_ts"])
    rows = []
    for (build, model, topology), group in ok.groupby(["build", "model", "topology"]):
        best = group.loc[group["tg_ts"].idxmax()]
        rows.append({"build": build, "model": model, "metric": f"RPC vs local tg t/s ({topology})",
                     "best_cell": best["cell"], "setting": f"-dev {best['devices']}, link {best['link_rate']}",
                     "value": round(float(best["tg_ts"]), 2),
                     "defaults_value": round(float(best["local_tg_ts"]), 2) if pd.notna(best["local_tg_ts"]) else None,
                     "speedup_vs_defaults": round(float(best["tg_ratio_to_local"]), 3)
                     if pd.notna(best["tg_ratio_to_local"]) else None})
    return pd.DataFrame(rows, columns=summary.BEST_COLUMNS)

"""Do the statistics predict the next run? The share of cells whose next run falls in the prediction interval.

    .venv/bin/python benchmarks/prediction_check.py

After a complete ``make run`` (the first run), this measures every benchmark cell
again, all rounds (``snakemake --forcerun bench_cell``), and prints, per cell and
test, whether the second run's mean lies within the first run's 95 % prediction
interval, and the share over all. A well-calibrated interval holds about 95 % of
future runs; on a machine that drifts more between runs than within one, fewer.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

STATS = Path("results/stats.csv")


def main() -> int:
    if not STATS.exists():
        print("no results/stats.csv: run the workflow first (make run)")
        return 1
    first = pd.read_csv(STATS)
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--forcerun", "bench_cell"], check=True,
                   capture_output=True)
    second = pd.read_csv(STATS)
    both = first.merge(second, on=["build", "model", "cell", "test"], suffixes=("_1", "_2"))
    both = both.dropna(subset=["pi_low_1", "pi_high_1"])
    both["inside"] = (both["pi_low_1"] <= both["mean_ts_2"]) & (both["mean_ts_2"] <= both["pi_high_1"])
    for row in both.itertuples():
        print(f"{row.cell:<64} {row.test:<6} run 1 {row.mean_ts_1:8.2f} [{row.pi_low_1:8.2f}, {row.pi_high_1:8.2f}]"
              f"  run 2 {row.mean_ts_2:8.2f}  {'inside' if row.inside else 'OUTSIDE'}")
    share = both["inside"].mean()
    print(f"\n{int(both['inside'].sum())} of {len(both)} cell tests ({share:.0%}) of the second run lie within "
          "the first run's 95 % prediction interval")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Speed vs one parameter, one line per build/model, error bars from llama-bench's stddev.

Each figure is a slice through the defaults: the swept axis varies and
every other axis keeps its default value, which is what a named group
produces, so points on one line differ in that one parameter only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from llamabench import matrix  # noqa: E402

# Figure name -> axes swept on the x axis (a batch figure shows both batch and ubatch sweeps).
FIGURES: dict[str, list[str]] = {
    "threads": ["threads"],
    "batch": ["batch_size", "ubatch_size"],
    "gpu_layers": ["n_gpu_layers"],
}


def sweep(summary: pd.DataFrame, axis: str, base: dict[str, Any]) -> pd.DataFrame:
    """Rows where only ``axis`` may differ from the defaults."""
    ok = summary[summary["status"] == "ok"]
    mask = pd.Series(True, index=ok.index)
    for other in matrix.AXES:
        if other != axis:
            mask &= ok[other].astype(str) == str(base[other])
    return ok[mask]


def plot(summary: pd.DataFrame, name: str, base: dict[str, Any], png: Path, svg: Path) -> bool:
    """Draw figure ``name``; returns whether it had at least one swept line to show."""
    axes_swept = FIGURES[name]
    fig, panels = plt.subplots(len(axes_swept), 2, figsize=(11, 4 * len(axes_swept)), squeeze=False)
    has_data = False
    for row, axis in enumerate(axes_swept):
        data = sweep(summary, axis, base)
        for col, (kind, label) in enumerate([("pp", "prompt processing"), ("tg", "text generation")]):
            ax = panels[row][col]
            part = data[data["test"].str.startswith(kind) & ~data["test"].str.contains("+", regex=False)]
            for (build, model), line in part.groupby(["build", "model"]):
                line = line.sort_values(axis, key=lambda s: pd.to_numeric(s, errors="coerce"))
                if line[axis].nunique() < 2:
                    continue
                has_data = True
                ax.errorbar(line[axis].astype(str), line["avg_ts"], yerr=line["stddev_ts"], marker="o",
                            capsize=3, label=f"{build} / {model}")
            ax.set_title(f"{label} vs {axis}")
            ax.set_xlabel(axis)
            ax.set_ylabel("tokens/s (mean ± stddev)")
            ax.grid(alpha=0.3)
            if ax.has_data():
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, f"no {axis} sweep in this run", ha="center", va="center",
                        transform=ax.transAxes, color="grey")
    fig.tight_layout()
    for path in (png, svg):
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return has_data

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

def sweep(summary: pd.DataFrame, free: set[str], base: dict[str, Any]) -> pd.DataFrame:
    """Successful rows whose axes outside ``free`` all keep their default value."""
    ok = summary[summary["status"] == "ok"].astype({"test": str})
    mask = pd.Series(True, index=ok.index)
    for axis in matrix.AXES:
        if axis not in free:
            mask &= ok[axis].astype(str) == str(base[axis])
    return ok[mask]


def swept(summary: pd.DataFrame, name: str, base: dict[str, Any]) -> bool:
    """Whether figure ``name`` has more than the default value of its axis to show."""
    x_axis, split, _ = matrix.FIGURES[name]
    axes = [a for a in (x_axis, split) if a]
    data = sweep(summary, set(axes), base)
    return any(data[a].nunique() > 1 for a in axes)


def plot(summary: pd.DataFrame, name: str, base: dict[str, Any], png: Path, svg: Path) -> None:
    """Draw figure ``name`` as PNG and SVG: prompt processing left, text generation right."""
    x_axis, split, log_x = matrix.FIGURES[name]
    data = sweep(summary, {x_axis, split} - {None}, base)
    data = data.assign(x=pd.to_numeric(data[x_axis]))
    fig, panels = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (kind, label) in zip(panels, [("pp", "prompt processing"), ("tg", "text generation")]):
        part = data[data["test"].str.startswith(kind) & ~data["test"].str.contains("+", regex=False)]
        keys = ["build", "model"] + ([split] if split else [])
        for key, line in part.groupby(keys):
            line = line.sort_values("x")
            text = " / ".join(str(k) for k in key[:2]) + (f", {split}={key[2]}" if split else "")
            ax.errorbar(line["x"], line["avg_ts"], yerr=line["stddev_ts"], marker="o", capsize=3, label=text)
        ax.set_title(f"{label} vs {x_axis}")
        ax.set_xlabel(x_axis)
        ax.set_ylabel("tokens/s (mean ± stddev)")
        ax.grid(alpha=0.3)
        if log_x:
            ax.set_xscale("log", base=2)
        if not part.empty:
            ticks = sorted(part["x"].unique())
            ax.set_xticks(ticks, [str(int(t)) for t in ticks])
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no successful cells", ha="center", va="center", transform=ax.transAxes, color="grey")
    fig.tight_layout()
    for path in (png, svg):
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    plt.close(fig)

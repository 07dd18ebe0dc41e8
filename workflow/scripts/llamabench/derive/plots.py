"""What every figure shares: matplotlib without a display, saving as PNG and SVG, the note of an empty panel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["empty_note", "finish", "plt", "save"]


def save(fig: Any, png: Path, svg: Path) -> None:
    fig.tight_layout()
    for path in (png, svg):
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    plt.close(fig)


def empty_note(ax: Any, text: str = "no successful cells") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")


def finish(ax: Any, empty: bool, note: str) -> None:
    """A grid, and the legend, or the note that says why the panel is empty."""
    ax.grid(alpha=0.3)
    if empty:
        empty_note(ax, note)
    else:
        ax.legend(fontsize=7)

"""What every figure shares: matplotlib without a display, saving as PNG and SVG, the note of an empty panel,
and the mark a figure with nothing to draw carries so that the report leaves it out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["drawn", "empty_note", "finish", "plt", "save"]

# Pixels per inch of the PNGs: a 11-inch figure is 880 px wide, what the report shows it at, so the page embeds no
# pixels it scales away (110 dpi made a 1200-px image the browser shrank).
DPI = 80
# The PNG text (its Description) of a figure that has no data: an empty frame says nothing, so the report omits it.
NOTHING_TO_DRAW = "nothing to draw"


def save(fig: Any, png: Path, svg: Path, has_data: bool = True) -> None:
    """Write ``fig`` as PNG and SVG; without ``has_data`` the PNG says so in its text (see ``drawn``)."""
    fig.tight_layout()
    for path in (png, svg):
        path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=DPI, metadata=None if has_data else {"Description": NOTHING_TO_DRAW})
    fig.savefig(svg, dpi=DPI)
    plt.close(fig)


def drawn(png: Path) -> bool:
    """Whether a figure has anything on it: ``save`` marks one that has not; the report embeds only the others."""
    with Image.open(png) as image:
        return image.info.get("Description") != NOTHING_TO_DRAW


def empty_note(ax: Any, text: str = "no successful cells") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")


def finish(ax: Any, empty: bool, note: str) -> None:
    """A grid, and the legend, or the note that says why the panel is empty."""
    ax.grid(alpha=0.3)
    if empty:
        empty_note(ax, note)
    else:
        ax.legend(fontsize=7)

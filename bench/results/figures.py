"""Figures and their HTML: matplotlib imported on first use (start-up stays fast) with the
non-interactive Agg backend and the house style, PNGs saved and closed, PNGs inlined into a
self-contained HTML page as data: URIs. Every plot of run, sweep, predictor and collectives
reports goes through here."""
from __future__ import annotations

import base64
from pathlib import Path

DPI = 100


def pyplot():
    import matplotlib  # lazy: slow to import, and only reports need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.titleweight": "bold",
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def save(fig, path: Path) -> Path:
    """Write `fig` as a PNG at `path`, close it (a long report would otherwise hold them all)."""
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    pyplot().close(fig)
    return path


def data_uri(path: Path) -> str:
    """A PNG as a data: URI, so that report.html is one file that can be mailed or archived."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")

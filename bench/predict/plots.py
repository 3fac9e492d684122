"""Plots of a prediction sweep (bench.predict.scale): efficiency per strategy against one swept
quantity. matplotlib is imported lazily, only when a sweep is drawn."""
from __future__ import annotations

from pathlib import Path

from bench.results.figures import pyplot, save

LABELS = {"world_size": "world size (GPUs)", "inter_site_latency_ms": "inter-site latency (ms)"}


def efficiency_vs(rows: list[dict], x: str, fixed: str, path: Path, log_x: bool) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    by_strategy: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r[x]):
        by_strategy.setdefault(r["strategy"], []).append(r)
    for name, pts in by_strategy.items():
        ax.plot([p[x] for p in pts], [p["efficiency_overall"] * 100 for p in pts], marker="o",
                label=name)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(LABELS.get(x, x))
    ax.set_ylabel("efficiency, overall (%)")
    ax.set_title(f"Predicted efficiency per strategy ({fixed})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path)

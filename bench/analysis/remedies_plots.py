"""Plots of the remedies report (bench.analysis.remedies): tokens/s per strategy against latency,
and each group's loss curves against tokens and against time. matplotlib is imported lazily
(bench.results.figures), only when a report is drawn."""
from __future__ import annotations

from pathlib import Path

from bench.analysis.remedies import BASELINE, others_label
from bench.results.figures import pyplot, save


def throughput(result: dict, path: Path) -> Path:
    """tokens/s against latency (or against the groups, as categories), one line per strategy
    (and per value of any other swept key)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    numeric = all(p["latency_ms"] is not None for p in result["points"])
    cats = [v["group"] for v in result["groups"]]
    lines: dict[str, list[dict]] = {}
    for p in result["points"]:
        if p["tokens_per_s"] is not None:
            label = ", ".join(x for x in (p["strategy"], others_label(p["swept"])) if x)
            lines.setdefault(label, []).append(p)
    for label, pts in lines.items():
        xs = [p["latency_ms"] if numeric else cats.index(p["group"]) for p in pts]
        ax.plot(xs, [p["tokens_per_s"] for p in pts], marker="o", label=label,
                linewidth=2.5 if pts[0]["strategy"] == BASELINE else 1.5)
    if not numeric:
        ax.set_xticks(range(len(cats)), cats, rotation=20, ha="right", fontsize=8)
    ax.set_xlabel("inter-site latency (ms)" if numeric else "point group")
    ax.set_ylabel("tokens/s")
    ax.set_title("Throughput per strategy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def losses(label: str, members: list[dict], curves: dict, floors: dict, doc: dict,
           path: Path) -> Path | None:
    """Loss against cumulative tokens (same data: the model's quality per token) and against
    cumulative step time (what the user waits for), one line per strategy; None if no curve."""
    drawn = [(p, curves.get(p["index"])) for p in members if curves.get(p["index"])]
    if not drawn:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    unit = "device s" if doc.get("time_base") == "device" else "s"
    for p, c in drawn:
        width = 2.5 if p["strategy"] == BASELINE else 1.5
        axes[0].plot(c["tokens"], c["loss"], label=p["strategy"], linewidth=width)
        axes[1].plot(c["seconds"], c["loss"], label=p["strategy"], linewidth=width)
    floor = next((floors[p["index"]] for p, _ in drawn if floors.get(p["index"]) is not None), None)
    for ax, xlabel in ((axes[0], "cumulative tokens (all ranks)"),
                       (axes[1], f"cumulative step time ({unit})")):
        if floor is not None:
            ax.axhline(floor, color="#555555", linestyle="--", linewidth=1, label="entropy floor")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("training loss, over ranks by tokens (nats/token)")
    axes[0].set_title(f"{label}: loss per token trained")
    axes[1].set_title(f"{label}: loss per unit of time")
    return save(fig, path)

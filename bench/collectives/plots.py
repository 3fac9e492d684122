"""One plot per op and scope: measured time against size (log-log) and, where a link was
emulated, the collective model's line. matplotlib is imported inside (Agg backend)."""
from __future__ import annotations

from pathlib import Path


def write_plots(doc: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    blocks: dict[tuple[str, str], list[dict]] = {}
    for row in doc.get("rows", []):
        blocks.setdefault((row["op"], row["scope"]), []).append(row)
    return [_plot(op, scope, rows, out) for (op, scope), rows in blocks.items()]


def _plot(op: str, scope: str, rows: list[dict], out: Path) -> Path:
    from bench.results.figures import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = [r["size"] for r in rows]
    ax.loglog(sizes, [r["time"] for r in rows], "o-", label="measured (mean over ranks)")
    model = [(r["size"], r["model_time"]) for r in rows if r.get("model_time")]
    if model:
        ax.loglog(*zip(*model), "--", label="model (NCCL tuner model, configured topology)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("size (B)")
    ax.set_ylabel("time (us)")
    ax.set_title(f"{op}, scope {scope} ({rows[0]['ranks']} ranks)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return save(fig, out / f"{scope}_{op}.png")

"""The report's one plot: predicted tokens/s of the candidates (and emulated, where checked), each
bar labelled with its loss cost, so that speed is never read without what it costs."""
from __future__ import annotations

from pathlib import Path

from bench.advise.search import BASIS_EQUAL_LOSS
from bench.results.figures import pyplot, save

BARS = 12


def short_loss(loss: dict) -> str:
    if not loss["measured"]:
        return "loss: not measured"
    if loss.get("overrides") == "the baseline":
        return "baseline"
    sd = loss.get("gap_std_pct")
    return f"loss {loss['gap_pct']:+.2f}%" + (f" ±{sd:.2f}" if sd is not None else "")


def candidates(doc: dict, path: Path) -> Path:
    from bench.advise.report import knobs_text

    rows = list(doc["verified"] or [])
    done = {r.get("position") for r in rows}
    rows += [r for r in doc["ranked"] if r["position"] not in done][:max(0, BARS - len(rows))]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 0.45 * len(rows) + 1.4))
    names = [f"{r['strategy']} {knobs_text(r['knobs'])}" for r in rows]
    y = list(range(len(rows)))[::-1]
    colors = ["#4c72b0" if r["basis"] == BASIS_EQUAL_LOSS else "#c0c0c0" for r in rows]
    ax.barh(y, [r["tokens_per_s"] for r in rows], color=colors, label="predicted")
    eq = [(yy, r["equal_loss_tokens_per_s"]) for yy, r in zip(y, rows)
          if r["equal_loss_tokens_per_s"] is not None]
    ax.barh([yy for yy, _ in eq], [e for _, e in eq], height=0.35, color="#1f3d6b",
            label="at equal loss (measured token ratio)")
    em = [(yy, r["emulated"]["tokens_per_s"]) for yy, r in zip(y, rows)
          if r.get("emulated", {}).get("tokens_per_s")]
    if em:
        ax.scatter([e for _, e in em], [yy for yy, _ in em], color="#dd8452", zorder=3,
                   marker="D", label="emulated")
    for yy, r in zip(y, rows):
        ax.text(r["tokens_per_s"], yy, "  " + short_loss(r["loss"]), va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("tokens/s (device time); grey: loss cost not measured or not reached")
    ax.set_xlim(0, max(r["tokens_per_s"] for r in rows) * 1.45)
    ax.set_title(f"Candidates for {doc['cluster']} over {doc['network']}")
    ax.legend(fontsize=8, loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path)

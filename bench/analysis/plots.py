"""Per-rank plots: wait heatmap, compute distributions, step-time waterfall. matplotlib is
imported inside the functions (start-up stays fast) and always with the non-interactive Agg
backend. Every function writes one PNG and returns its path."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.results.console import milliseconds
from bench.results.figures import pyplot, save
from bench.results.rundir import Run


def rank_labels(run: Run) -> list[str]:
    return [run.label(r) for r in range(run.world_size)]


def wait_heatmap(run: Run, out: Path) -> Path:
    plt = pyplot()
    numbers = sorted(run.steps)
    wait = np.array([[run.steps[s][r]["wait_ms"] for s in numbers] for r in range(run.world_size)])
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.45 * run.world_size))
    image = ax.imshow(wait, aspect="auto", cmap="magma_r", interpolation="nearest",
                      extent=(numbers[0] - 0.5, numbers[-1] + 0.5, run.world_size - 0.5, -0.5))
    ax.set_yticks(range(run.world_size), rank_labels(run))
    ax.set_xlabel("step")
    ax.set_title("Who waits: dark cells = the rank sat idle for the slowest rank to be ready")
    bar = fig.colorbar(image, ax=ax, pad=0.01)
    bar.set_label("wait (ms)")
    return save(fig, out)


def compute_distributions(run: Run, out: Path) -> Path:
    plt = pyplot()
    compute = [[run.steps[s][r]["fwd_ms"] + run.steps[s][r]["bwd_ms"] for s in sorted(run.steps)]
               for r in range(run.world_size)]
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.75 * run.world_size))
    import matplotlib

    major, minor = (int(x) for x in matplotlib.__version__.split(".")[:2])
    horizontal = {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}
    ax.boxplot(compute, **horizontal, widths=0.5, showfliers=True,
               flierprops={"marker": ".", "markersize": 3, "alpha": 0.5},
               medianprops={"color": "#d62728", "linewidth": 2})
    ax.set_yticks(range(1, run.world_size + 1), rank_labels(run))
    ax.invert_yaxis()
    for r, values in enumerate(compute):
        median = float(np.median(values))
        ax.text(median, r + 1 - 0.33, f"median {median:.1f} ms", ha="center", va="bottom",
                fontsize=8, color="#d62728")
    ax.set_xlabel(f"compute per step: forward + backward ({run.ms})")
    ax.set_title("Compute time per rank over measured steps: a box further right is a straggler")
    ax.set_xlim(left=0)
    return save(fig, out)


def waterfall(run: Run, parts: dict, out: Path) -> Path:
    """From the ideal step to the measured one: ideal, + imbalance, + network, + other."""
    plt = pyplot()
    items = [("ideal step\n(balanced,\nno link delay)", parts["ideal_ms"], "total"),
             ("+ imbalance\n(waiting for\nthe slowest)", parts["imbalance_ms"], "delta"),
             ("+ network\n(injected\nlink delay)", parts["network_ms"], "delta"),
             ("+ other\n(medians do not\nadd exactly)", parts["other_ms"], "delta"),
             ("measured step", parts["measured_ms"], "total")]
    colours = {"total": "#4c72b0", "delta_pos": "#dd8452", "delta_neg": "#55a868"}
    fig, ax = plt.subplots(figsize=(11, 4))
    level = 0.0
    for i, (name, value, kind) in enumerate(items):
        if kind == "total":
            bottom, height, colour = 0.0, value, colours["total"]
            level = value
        else:
            bottom, height = level, value
            colour = colours["delta_pos" if value >= 0 else "delta_neg"]
            level += value
        ax.bar(i, height, bottom=bottom, color=colour, width=0.6)
        top = max(bottom, bottom + height)
        text = milliseconds(value)
        sign = "" if kind == "total" or text.startswith("-") else "+"
        ax.text(i, top, f"{sign}{text} ms", ha="center", va="bottom", fontsize=10)
    ax.set_xticks(range(len(items)), [name for name, _, _ in items])
    ax.set_ylabel(f"median step time ({run.ms})")
    ax.set_ylim(0, max(v for _, v, k in items if k == "total") * 1.15)
    ax.set_title("Where the step time goes: from the ideal step to the measured one")
    return save(fig, out)

"""Plots against time: the per-rank phase timeline of a window of steps, and the loss curve."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.analysis.plots import pyplot, rank_labels, save
from bench.results.rundir import Run

WINDOW_STEPS = 10

# (name, colour): drawn in this order inside each step, on the aligned clock.
PHASES = [("data", "#b0b0b0"), ("forward", "#4c72b0"), ("backward", "#55a868"),
          ("wait", "#d62728"), ("transfer", "#8172b3"), ("optimizer", "#937860"),
          ("outer sync", "#da8bc3")]
PAD_COLOUR = "#000000"


def phase_spans(rec: dict) -> dict:
    """{phase: (start_s, end_s)} on the aligned clock; pad is drawn separately."""
    start, ready, synced, end = rec["t_start_s"], rec["t_ready_s"], rec["t_synced_s"], rec["t_end_s"]
    data_end = start + rec["data_ms"] / 1000.0
    fwd_end = data_end + rec["fwd_ms"] / 1000.0
    last_ready = ready + rec["wait_ms"] / 1000.0
    opt_end = end - (rec.get("outer_ms") or 0.0) / 1000.0  # localsgd / diloco sync after it
    spans = {"data": (start, data_end), "forward": (data_end, fwd_end), "backward": (fwd_end, ready),
             "wait": (ready, last_ready), "transfer": (last_ready, synced),
             "optimizer": (synced, opt_end)}
    if opt_end < end:
        spans["outer sync"] = (opt_end, end)
    return spans


def window_steps(run: Run, transients: list[dict]) -> list[int]:
    """About ten consecutive steps: around the first transient's start, else the first measured."""
    numbers = sorted(run.all_steps)
    measured = sorted(run.steps)
    first = measured[0]
    if transients:
        first = max(measured[0], min(t["start_step"] for t in transients) - 3)
    i = numbers.index(first) if first in numbers else 0
    return numbers[i:i + WINDOW_STEPS]


def timeline(run: Run, transients: list[dict], out: Path) -> Path:
    plt = pyplot()
    chosen = window_steps(run, transients)
    t0 = min(r["t_start_s"] for s in chosen for r in run.all_steps[s])
    fig, ax = plt.subplots(figsize=(12, 1.6 + 0.6 * run.world_size))
    for name, colour in PHASES:
        for rank in range(run.world_size):
            spans = [phase_spans(run.all_steps[s][rank]).get(name) for s in chosen]
            bars = [((a - t0) * 1000.0, max(0.0, (b - a) * 1000.0)) for a, b in filter(None, spans)]
            if not bars:
                continue
            ax.broken_barh(bars, (rank - 0.35, 0.7), facecolors=colour,
                           label=name if rank == 0 else None)
    for rank in range(run.world_size):
        pads = [((r["t_ready_s"] - t0) * 1000.0 - r["pad_ms"], r["pad_ms"])
                for r in (run.all_steps[s][rank] for s in chosen) if r["pad_ms"] > 0]
        if pads:
            ax.broken_barh(pads, (rank + 0.2, 0.15), facecolors=PAD_COLOUR,
                           label="pad (emulated slowdown, inside fwd+bwd)" if rank == 0 else None)
    span_ms = (max(r["t_end_s"] for r in run.all_steps[chosen[-1]]) - t0) * 1000.0
    last_label = None
    for s in chosen:
        start = (min(r["t_start_s"] for r in run.all_steps[s]) - t0) * 1000.0
        ax.axvline(start, color="#666666", linewidth=0.6, linestyle=":")
        if last_label is None or start - last_label > 0.06 * span_ms:  # labels must not overlap
            ax.text(start, -0.55, f"step {s}", fontsize=8, color="#444444", va="bottom")
            last_label = start
    ax.set_yticks(range(run.world_size), rank_labels(run))
    ax.set_ylim(run.world_size - 0.5, -0.75)
    ax.set_xlabel(f"time since step {chosen[0]} started ({run.ms}, one clock for all ranks)")
    ax.set_title(f"Steps {chosen[0]}-{chosen[-1]} rank by rank: red = waiting for the slowest rank")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.02 * (4 - min(run.world_size, 4))),
              ncol=7, frameon=False, fontsize=9)
    return save(fig, out)


def loss_curves(run: Run, out: Path) -> Path:
    plt = pyplot()
    numbers = sorted(run.all_steps)
    loss = np.array([np.average([r["loss"] for r in run.all_steps[s]],
                                weights=[r["tokens"] for r in run.all_steps[s]]) for s in numbers])
    t_first = min(r["t_start_s"] for r in run.all_steps[numbers[0]])
    wall = np.array([max(r["t_end_s"] for r in run.all_steps[s]) - t_first for s in numbers])
    warm_end = min(run.steps)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, x, xlabel in ((axes[0], np.array(numbers), "step"),
                          (axes[1], wall, "wall-clock time since the first step (s)")):
        ax.plot(x, loss, color="#4c72b0", linewidth=1.5)
        ax.set_xlabel(xlabel)
        warm_x = x[numbers.index(warm_end)] if warm_end in numbers else x[0]
        ax.axvspan(x[0], warm_x, color="#eeeeee", zorder=0)
        ax.text(x[0], 0.5, "warmup", va="center", ha="left", rotation=90, fontsize=8,
                color="#666666", transform=ax.get_xaxis_transform())
        if run.entropy_floor is not None:
            ax.axhline(run.entropy_floor, color="#d62728", linestyle="--", linewidth=1)
            ax.text(x[-1], run.entropy_floor, f"entropy floor {run.entropy_floor:.3f} nats",
                    ha="right", va="bottom", color="#d62728", fontsize=9)
    axes[0].set_ylabel("training loss, over ranks by tokens (nats/token)")
    axes[0].set_title("Loss by step: how close to the floor it gets")
    axes[1].set_title("Loss by wall-clock: what the slowdowns cost in time")
    if run.entropy_floor is not None:
        for ax in axes:
            ax.set_ylim(bottom=min(run.entropy_floor, loss.min()) * 0.9)
    return save(fig, out)

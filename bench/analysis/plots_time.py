"""Plots against time: the per-rank phase timeline of a window of steps, and the loss curve."""
from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np

from bench.analysis.plots import pyplot, rank_labels, save
from bench.results.rundir import Run

WINDOW_STEPS = 10

# (name, colour): drawn in this order inside each step, on the aligned clock.
PHASES = [("data", "#b0b0b0"), ("forward", "#4c72b0"), ("backward", "#55a868"),
          ("wait", "#d62728"), ("transfer", "#8172b3"), ("optimizer", "#937860"),
          ("outer sync", "#da8bc3")]
PAD, PAD_COLOUR = "pad", "#000000"
LABELS = {PAD: "pad (emulated slowdown, inside fwd+bwd)"}


def phase_spans(rec: dict) -> dict:
    """{phase: (start_s, end_s)} on the aligned clock: the device phases (pad is inside forward
    and backward, where compute pacing put it)."""
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


def lagged_steps(run: Run) -> set:
    """Steps in which some rank's host fell behind the emulated timeline (bench.emulate.lag):
    their phases are this machine's hiccup, not the emulated devices' time."""
    return {s for s, recs in run.all_steps.items() if any(r.get("lagged") for r in recs)}


def window_steps(run: Run, transients: list[dict]) -> list[int]:
    """About ten consecutive steps: from three steps before the first transient's start, else
    from the first measured step. Where some of them lagged, the window slides to hold as few
    as it can: up to three steps either way around a transient (which stays inside), anywhere
    among the measured steps without one."""
    numbers = sorted(run.all_steps)
    first = bisect.bisect_left(numbers, min(run.steps))
    if transients:
        aim = max(first, bisect.bisect_left(numbers, min(t["start_step"] for t in transients) - 3))
        starts = range(max(first, aim - 3), aim + 4)
    else:
        aim, starts = first, range(first, len(numbers))
    lagged = lagged_steps(run)
    fits = [i for i in starts if i + WINDOW_STEPS <= len(numbers)]
    if not lagged.intersection(numbers[aim:aim + WINDOW_STEPS]) or not fits:
        return numbers[aim:aim + WINDOW_STEPS]
    best = min(fits, key=lambda i: (len(lagged.intersection(numbers[i:i + WINDOW_STEPS])),
                                    abs(i - aim)))
    return numbers[best:best + WINDOW_STEPS]


def step_origins(run: Run, chosen: list[int], internals: bool = False) -> dict:
    """{step: the aligned instant its x counts from}. On the run's clock that is the window's
    first start. In device time, without `internals`, the gaps between one step's end and the
    next one's start are left out: they are this machine's bookkeeping between log windows (the
    records' gather) divided by D, no time of the emulated devices."""
    t0 = min(r["t_start_s"] for s in chosen for r in run.all_steps[s])
    collapse = run.time_base == "device" and not internals
    origins, skipped, last_end = {}, 0.0, None
    for s in chosen:
        recs = run.all_steps[s]
        if collapse and last_end is not None:
            skipped += max(0.0, min(r["t_start_s"] for r in recs) - last_end)
        origins[s] = t0 + skipped
        last_end = max(r["t_end_s"] for r in recs)
    return origins


def timeline_bars(run: Run, chosen: list[int], internals: bool = False) -> dict:
    """{(name, rank): [(x_ms, width_ms)]} in drawing order, x in ms from step_origins: the
    device phases of every rank, and with `internals` the pad (compute pacing's share of
    forward + backward, as a bar of its length ending at t_ready)."""
    origins = step_origins(run, chosen, internals)
    bars = {}
    for name, _ in PHASES:
        for rank in range(run.world_size):
            spans = [(s, phase_spans(run.all_steps[s][rank]).get(name)) for s in chosen]
            drawn = [((span[0] - origins[s]) * 1000.0, max(0.0, (span[1] - span[0]) * 1000.0))
                     for s, span in spans if span]
            if drawn:
                bars[name, rank] = drawn
    for rank in range(run.world_size) if internals else ():
        recs = [(s, run.all_steps[s][rank]) for s in chosen]
        pads = [((r["t_ready_s"] - origins[s]) * 1000.0 - r["pad_ms"], r["pad_ms"])
                for s, r in recs if r["pad_ms"] > 0]
        if pads:
            bars[PAD, rank] = pads
    return bars


def draw_timeline(run: Run, transients: list[dict], internals: bool = False):
    """The timeline figure (not saved). Each bar collection's gid is "name|rank", its legend
    label the name (once). Device phases only, unless `internals`: then pad bars too, and the
    labels of lagged steps say so."""
    plt = pyplot()
    chosen = window_steps(run, transients)
    origins = step_origins(run, chosen, internals)
    fig, ax = plt.subplots(figsize=(12, 1.6 + 0.6 * run.world_size))
    colours = {**dict(PHASES), PAD: PAD_COLOUR}
    labelled = set()
    for (name, rank), bars in timeline_bars(run, chosen, internals).items():
        where = (rank + 0.2, 0.15) if name == PAD else (rank - 0.35, 0.7)
        ax.broken_barh(bars, where, facecolors=colours[name], gid=f"{name}|{rank}",
                       label=None if name in labelled else LABELS.get(name, name))
        labelled.add(name)
    _step_labels(ax, run, origins, lagged_steps(run) if internals else set())
    ax.set_yticks(range(run.world_size), rank_labels(run))
    ax.set_ylim(run.world_size - 0.5, -0.75)
    left_out = "; gaps between log windows left out" \
        if origins[chosen[-1]] > origins[chosen[0]] else ""
    ax.set_xlabel(f"time since step {chosen[0]} started ({run.ms}, one clock for all "
                  f"ranks{left_out})")
    ax.set_title(f"Steps {chosen[0]}-{chosen[-1]} rank by rank: red = waiting for the slowest rank")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.02 * (4 - min(run.world_size, 4))),
              ncol=len(labelled), frameon=False, fontsize=9)
    return fig


def _step_labels(ax, run: Run, origins: dict, lagged: set) -> None:
    """A dotted line at each step's start, labelled where labels do not overlap."""
    last = max(origins)
    span_ms = (max(r["t_end_s"] for r in run.all_steps[last]) - origins[last]) * 1000.0
    last_label = None
    for s, origin in origins.items():
        start = (min(r["t_start_s"] for r in run.all_steps[s]) - origin) * 1000.0
        ax.axvline(start, color="#666666", linewidth=0.6, linestyle=":")
        if last_label is None or start - last_label > 0.06 * span_ms:  # labels must not overlap
            text, colour = (f"step {s}, host lagged", "#d62728") if s in lagged \
                else (f"step {s}", "#444444")
            ax.text(start, -0.55, text, fontsize=8, color=colour, va="bottom")
            last_label = start


def timeline(run: Run, transients: list[dict], out: Path, internals: bool = False) -> Path:
    return save(draw_timeline(run, transients, internals), out)


def elapsed_s(run: Run, numbers: list[int]) -> tuple[np.ndarray, str]:
    """(seconds at each step's end, axis label). In device time: the cumulative step time (each
    step ends when its slowest rank does), what the emulated cluster spends, without this
    machine's bookkeeping between log windows; on the wall clock: since the first step started."""
    if run.time_base == "device":
        ms = np.cumsum([max(r["step_ms"] for r in run.all_steps[s]) for s in numbers])
        return ms / 1000.0, "cumulative step time (device s)"
    t_first = min(r["t_start_s"] for r in run.all_steps[numbers[0]])
    return (np.array([max(r["t_end_s"] for r in run.all_steps[s]) - t_first for s in numbers]),
            "wall-clock time since the first step (s)")


def loss_curves(run: Run, out: Path) -> Path:
    plt = pyplot()
    numbers = sorted(run.all_steps)
    loss = np.array([np.average([r["loss"] for r in run.all_steps[s]],
                                weights=[r["tokens"] for r in run.all_steps[s]]) for s in numbers])
    elapsed, xlabel = elapsed_s(run, numbers)
    warm_end = min(run.steps)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, x, xlabel in ((axes[0], np.array(numbers), "step"), (axes[1], elapsed, xlabel)):
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
    axes[1].set_title("Loss by time: what the slowdowns cost in time")
    if run.entropy_floor is not None:
        for ax in axes:
            ax.set_ylim(bottom=min(run.entropy_floor, loss.min()) * 0.9)
    return save(fig, out)

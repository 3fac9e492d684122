"""Transients: windows of steps in which one rank computed slower than its own norm.

For rank r over the measured steps s (in step order):
  x_s    = compute_r,s - median_{k != r} compute_k,s    (0 subtracted when W == 1)
           Subtracting the other ranks' compute of the same step removes slowdowns the whole
           cluster shares (a busy shared host), which are not this rank's trouble.
  norm   = median_s x_s,   mad = median_s |x_s - norm|
  roll_s = median of x over the centred window of WINDOW steps (shorter at the ends)
  step s is slow when  roll_s - norm > REL_THRESHOLD * median_s compute_r,s
                  and  roll_s - norm > MAD_THRESHOLD * mad
A rolling median needs more than half its window slow before it moves, so one- to three-step
spikes never fire, and the edges of a sustained slowdown stay sharp. Slow steps closer than
MERGE_GAP steps are merged into one window [start_step, end_step) - end EXCLUSIVE, like a
fault's end_step - and extra_ms = median over the window of (x_s - norm).
"""
from __future__ import annotations

import numpy as np

WINDOW = 7
REL_THRESHOLD = 0.25
MAD_THRESHOLD = 3.0
MERGE_GAP = 2


def compute_matrix(steps: dict) -> tuple[list[int], np.ndarray]:
    """(step numbers, compute_ms array of shape (W, S))."""
    numbers = sorted(steps)
    c = np.array([[r["fwd_ms"] + r["bwd_ms"] for r in steps[s]] for s in numbers]).T
    return numbers, c


def excess_series(c: np.ndarray, rank: int) -> np.ndarray:
    """x_s: this rank's compute minus the median of the others' in the same step."""
    if c.shape[0] == 1:
        return c[rank].copy()
    others = np.delete(c, rank, axis=0)
    return c[rank] - np.median(others, axis=0)


def rolling_median(x: np.ndarray, window: int = WINDOW) -> np.ndarray:
    half = window // 2
    return np.array([np.median(x[max(0, i - half):i + half + 1]) for i in range(len(x))])


def slow_mask(c: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(slow flags per step, x_s, norm) for one rank."""
    x = excess_series(c, rank)
    norm = float(np.median(x))
    mad = float(np.median(np.abs(x - norm)))
    excess = rolling_median(x) - norm
    threshold = max(REL_THRESHOLD * float(np.median(c[rank])), MAD_THRESHOLD * mad)
    return excess > threshold, x, norm


def windows(flags: np.ndarray, gap: int = MERGE_GAP) -> list[tuple[int, int]]:
    """Index ranges [i, j) of flagged runs, merging runs separated by at most `gap` steps."""
    out: list[list[int]] = []
    for i in np.flatnonzero(flags):
        if out and i - out[-1][1] <= gap:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1])
    return [(a, b) for a, b in out]


def find(steps: dict) -> list[dict]:
    """[{rank, start_step, end_step (exclusive), steps, extra_ms}], by rank then start."""
    numbers, c = compute_matrix(steps)
    found = []
    for rank in range(c.shape[0]):
        flags, x, norm = slow_mask(c, rank)
        for a, b in windows(flags):
            found.append({"rank": rank, "start_step": numbers[a], "end_step": numbers[b - 1] + 1,
                          "steps": b - a, "extra_ms": float(np.median(x[a:b] - norm))})
    return found

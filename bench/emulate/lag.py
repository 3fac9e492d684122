"""A busy host, seen and recovered from. D is agreed at start (bench.emulate.compute.calibrate),
but a laptop does not stay quiet: when this machine's real work runs past the paced timeline,
the emulated step stretches and a rank looks slow for a reason that is no GPU's.

Per record (host ms on disk, device ms once read):
  host_lag_ms   how far this rank's real compute and exchange ran past the timeline this step:
                the overrun at its last deadline (what stretched the step) plus the lag at the
                step's end (carried into the next step's forward)
  host_lagged   this rank's overrun exceeded LAG_TOLERANCE of its paced work: the step is longer
                than its device times say because of this machine
  lagged        some rank's host lagged in this step (the step's time is the host's, not the
                cluster's); statistics leave such steps out unless emulation.lagged_steps=keep

At every window's gather (no new synchronization: every rank holds the same window) the ranks
compute the same new D when lag persisted: more than PERSIST of the window's measured steps
lagged (warm-up steps, whose first iterations lag anyway, do not count). The
new D covers the median need of those steps with the calibration's headroom, and never shrinks.
"""
from __future__ import annotations

import statistics

LAG_TOLERANCE = 0.02  # overrun above 2% of a rank's paced work (fwd + bwd + opt) is lag
LAG_FLOOR_MS = 0.5  # host ms: below it, an overrun is the sleep's own granularity
PERSIST = 0.3  # lag in more than 30% of a window's steps raises D


def host_lag_ms(overrun_ms: float, lag_ms: float) -> float:
    return overrun_ms + lag_ms


def _work(rec: dict) -> float:
    return rec["fwd_ms"] + rec["bwd_ms"] + rec["opt_ms"]


def rank_lagged(rec: dict) -> bool:
    """Host-time record: did this rank's real work stretch the step?"""
    return rec["overrun_ms"] > max(LAG_TOLERANCE * _work(rec), LAG_FLOOR_MS)


def mark(window: list[dict]) -> set:
    """Set `host_lagged` and `lagged` on every record of the window; the lagged steps."""
    steps = set()
    for rec in window:
        rec["host_lagged"] = rank_lagged(rec)
        if rec["host_lagged"]:
            steps.add(rec["step"])
    for rec in window:
        rec["lagged"] = rec["step"] in steps
    return steps


def section(records: list[dict], mode: str, changes: list[dict]) -> dict:
    """summary.json emulation.lagged_steps and time_scale_changes (device-time records)."""
    measured = {r["step"] for r in records if not r["warmup"]}
    lagged = sorted({r["step"] for r in records if not r["warmup"] and r.get("lagged")})
    return {"lagged_steps": {"mode": mode, "count": len(lagged),
                             "share": len(lagged) / len(measured) if measured else 0.0,
                             "steps": lagged[:50]},
            "time_scale_changes": changes}


def for_statistics(records: list[dict], mode: str) -> list[dict]:
    """The records statistics, flags and the what-if read: lagged steps left out unless
    emulation.lagged_steps=keep."""
    if mode == "keep":
        return records
    return [r for r in records if not r.get("lagged")]


def next_scale(window: list[dict], scale: float, headroom: float) -> float | None:
    """The larger D the ranks switch to after this window (host-time records at D = `scale`),
    or None when the lag did not persist or the current D already covers it."""
    by_step: dict = {}
    for rec in (r for r in window if not r["warmup"]):  # warm-up's first steps lag anyway
        need = 1.0 + host_lag_ms(rec["overrun_ms"], rec["lag_ms"]) / max(_work(rec), 1e-9)
        by_step.setdefault(rec["step"], []).append((rank_lagged(rec), need))
    lagged = [max(need for _, need in rows) for rows in by_step.values()
              if any(flag for flag, _ in rows)]
    if not by_step or len(lagged) <= PERSIST * len(by_step):
        return None
    new = scale * statistics.median(lagged) * headroom
    return new if new > scale * (1 + LAG_TOLERANCE) else None

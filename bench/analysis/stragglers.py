"""Per-rank straggler analysis: scores (the same numbers as summary.json), the anomalous test and
who arrived last.

  relative_score_r = min_k median(compute_k) / median(compute_r)      (bench.results.metrics.rank_rows)
  expected_score_r = speed_r / max_k speed_k        (device-model speeds; null when any is unknown)
  flagged          = slower than its own device should be (bench.results.metrics.straggler_reason):
                     relative_score < straggler_threshold x expected_score (default 0.75), or,
                     emulating, compute above its pacing target / threshold; without a device
                     model, relative_score < threshold. `reason` says which.
  anomalous        = relative_score < ANOMALY_RATIO * expected_score  (false when expected is null)
  last_arrivals    = measured steps in which t_ready_r == max_k t_ready_k (ties count for each
                     rank that shares the maximum), last_arrival_share = last_arrivals / steps
"""
from __future__ import annotations

from bench.results import metrics

ANOMALY_RATIO = 0.8
"""A rank is anomalous when it reaches less than 80% of the score its device should give it."""


def last_arrivals(steps: dict, world_size: int) -> list[int]:
    counts = [0] * world_size
    for recs in steps.values():
        last = max(r["t_ready_s"] for r in recs)
        for r, rec in enumerate(recs):
            if rec["t_ready_s"] == last:
                counts[r] += 1
    return counts


def analyse(steps: dict, ranks: list[dict], threshold: float, targets=None) -> list[dict]:
    """One row per rank, ordered by rank. `targets`: see bench.results.metrics.rank_rows."""
    rows = metrics.rank_rows(steps, ranks, threshold, targets)
    counts = last_arrivals(steps, len(ranks))
    out = []
    for row, count in zip(rows, counts):
        expected = row["expected_score"]
        out.append({
            "rank": row["rank"],
            "site": row["site"],
            "device": row["device"],
            "compute_ms_p50": row["compute_ms_p50"],
            "relative_score": row["relative_score"],
            "expected_score": expected,
            "flagged": row["flagged"],
            "reason": row["reason"],
            "anomalous": bool(expected is not None
                              and row["relative_score"] < ANOMALY_RATIO * expected),
            "last_arrivals": count,
            "last_arrival_share": count / len(steps),
        })
    return out

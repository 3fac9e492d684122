"""What-if: replay each measured step from its records with some ranks' compute changed.

Per step s, with a_r = (t_ready_r - t_start_r) in ms (the rank's ready offset on its own clock):
  T_s        = max_r step_ms                       (bench.results.metrics.step_values)
  transfer_s = median_r transfer_ms                (exchange exposed after the last rank was ready)
  rest_s     = T_s - max_r a_r - transfer_s        (optimizer, start skew, whatever remains)
  replay(a') = max_r a'_r + transfer_s + rest_s    so replay(a) == T_s exactly
Fixing rank r replaces its compute (fwd_ms + bwd_ms) by the median of the other ranks' compute
in the same step: a'_r = a_r - compute_r + median_{k != r} compute_k.
  per_rank slowdown_r = median_s T_s / T'_{r,s}
  total               = median_s T_s / T_ideal_s   (the same number as summary.json)
  top_k: fix the k worst ranks (largest per-rank slowdown first, ties: larger median compute
         first) one after another, each replaced
         by the median of the other ranks' compute as it stands after the earlier fixes;
         recovered_share_k = median_s (T_s - T'_{k,s}) / median_s (T_s - T_ideal_s).
         It can exceed 1: fixing gives a slow rank the others' speed, which is more than
         re-splitting the same work by speed (what T_ideal assumes).
"""
from __future__ import annotations

import numpy as np

from bench.results import metrics


def step_arrays(recs: list[dict]) -> dict:
    """The replay's inputs for one step."""
    a = np.array([(r["t_ready_s"] - r["t_start_s"]) * 1000.0 for r in recs])
    c = np.array([metrics.compute_ms(r) for r in recs])
    values = metrics.step_values(recs)
    transfer = float(np.median([r["transfer_ms"] for r in recs]))
    return {"a": a, "c": c, "T": values["T"], "T_bal": values["T_bal"],
            "T_ideal": values["T_ideal"], "injected": values["exposed"],
            "transfer": transfer, "rest": values["T"] - a.max() - transfer}


def replay(step: dict, compute: np.ndarray) -> float:
    """Step time with each rank's compute set to `compute` (same order as the records)."""
    a = step["a"] - step["c"] + compute
    return float(a.max() + step["transfer"] + step["rest"])


def median_of_others(c: np.ndarray, rank: int) -> float:
    """Median compute of the other ranks; the rank's own when it is alone."""
    others = np.delete(c, rank)
    return float(np.median(others)) if len(others) else float(c[rank])


def fixed(c: np.ndarray, order: list[int]) -> np.ndarray:
    """Compute after fixing the ranks in `order`, one after another."""
    out = c.astype(float).copy()
    for rank in order:
        out[rank] = median_of_others(out, rank)
    return out


def worst_first(per_rank: list[dict], compute_p50: list[float]) -> list[int]:
    """Largest per-rank slowdown first; ties go to the larger median compute, then lower rank."""
    key = lambda row: (-row["slowdown"], -compute_p50[row["rank"]], row["rank"])  # noqa: E731
    return [row["rank"] for row in sorted(per_rank, key=key)]


def analyse(steps: dict) -> dict:
    arrays = [step_arrays(recs) for recs in steps.values()]
    world = len(arrays[0]["a"])
    T = np.array([s["T"] for s in arrays])
    per_rank = []
    for rank in range(world):
        T_fixed = np.array([replay(s, fixed(s["c"], [rank])) for s in arrays])
        per_rank.append({"rank": rank, "slowdown": float(np.median(T / T_fixed)),
                         "step_ms_p50": float(np.median(T_fixed))})
    order = worst_first(per_rank, list(np.median([s["c"] for s in arrays], axis=0)))
    gap_ideal = float(np.median([s["T"] - s["T_ideal"] for s in arrays]))
    top_k = []
    for k in range(1, world + 1):
        T_k = np.array([replay(s, fixed(s["c"], order[:k])) for s in arrays])
        gain = float(np.median(T - T_k))
        top_k.append({"k": k, "ranks": order[:k],
                      "recovered_share": gain / gap_ideal if gap_ideal > 0 else None,
                      "step_ms_p50": float(np.median(T_k))})
    return {
        "total": float(np.median([s["T"] / s["T_ideal"] for s in arrays])),
        "per_rank": per_rank,
        "top_k": top_k,
        "step_ms_p50": float(np.median(T)),
        "ideal_ms_p50": float(np.median([s["T_ideal"] for s in arrays])),
        "replay_error_ms": float(max(abs(replay(s, s["c"]) - s["T"]) for s in arrays)),
        "breakdown": breakdown(arrays),
    }


def breakdown(arrays: list[dict]) -> dict:
    """Medians for the waterfall: ideal + imbalance + network + other = measured (median)."""
    ideal = float(np.median([s["T_ideal"] for s in arrays]))
    imbalance = float(np.median([s["T"] - s["T_bal"] for s in arrays]))
    network = float(np.median([s["injected"] for s in arrays]))  # exposed link delay
    measured = float(np.median([s["T"] for s in arrays]))
    return {"ideal_ms": ideal, "imbalance_ms": imbalance, "network_ms": network,
            "other_ms": measured - ideal - imbalance - network, "measured_ms": measured}

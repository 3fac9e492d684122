"""Cross-rank attribution and the summary numbers. Pure functions on per-step records, so the
same code serves the live run, the tests' recomputation and the analysis of a run directory.

Definitions (DESIGN.md section 5; docs/metrics.md spells out every formula):
  wait_ms     = max_r t_ready_r - t_ready_self      (idle, waiting for slower ranks)
  transfer_ms = t_synced_self - max_r t_ready_r     (exchange left exposed)
Per measured step s over W ranks:
  T_s       = max_r step_ms                          (the step ends when the slowest rank does)
  T_bal_s   = T_s - max_r compute + sum_r tokens / sum_r(tokens / compute)
              (= W / sum_r(1/compute) when every rank has the same batch)
  T_ideal_s = T_bal_s - exposed_s
  exposed_s = min(injected_s, max_r transfer_ms + max_r outer_ms): the injected link delay the
              step waited for (with several buckets, link time overlaps backward and is hidden)
Summary statistics are medians over measured (non-warmup) steps.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Optional

import numpy as np

SCHEMA_VERSION = 1
RECORD_KEYS = ("step", "rank", "warmup", "t_start_s", "t_ready_s", "t_synced_s", "t_end_s",
               "data_ms", "fwd_ms", "bwd_ms", "pad_ms", "wait_ms", "transfer_ms", "injected_ms",
               "opt_ms", "step_ms", "tokens", "loss")


def attribute(records: Iterable[dict]) -> None:
    """Fill wait_ms and transfer_ms in place for records of all ranks (any mix of steps)."""
    by_step = defaultdict(list)
    for rec in records:
        by_step[rec["step"]].append(rec)
    for recs in by_step.values():
        last_ready = max(r["t_ready_s"] for r in recs)
        for r in recs:
            r["wait_ms"] = (last_ready - r["t_ready_s"]) * 1000.0
            r["transfer_ms"] = (r["t_synced_s"] - last_ready) * 1000.0


def compute_ms(rec: dict) -> float:
    return rec["fwd_ms"] + rec["bwd_ms"]


def complete_steps(records: Iterable[dict], world_size: int, measured_only: bool = True) -> dict:
    """{step: [record per rank, ordered by rank]} for steps every rank recorded."""
    by_step = defaultdict(dict)
    for rec in records:
        if measured_only and rec["warmup"]:
            continue
        by_step[rec["step"]][rec["rank"]] = rec
    return {s: [recs[r] for r in range(world_size)]
            for s, recs in sorted(by_step.items()) if len(recs) == world_size}


def step_values(recs: list[dict]) -> dict:
    """Cluster-level numbers of one step from its W records."""
    w = len(recs)
    compute = np.array([compute_ms(r) for r in recs])
    T = max(r["step_ms"] for r in recs)
    injected = max(r["injected_ms"] for r in recs)
    waited = max(r.get("transfer_ms") or 0.0 for r in recs) + max(r.get("outer_ms", 0.0) for r in recs)
    exposed = min(injected, waited)
    # The same work split in proportion to speed (tokens_r / compute_r): B / sum(speed); with
    # equal batches that is W / sum(1 / compute), with a balanced split it counts each rank's work.
    tokens = np.array([r["tokens"] for r in recs], dtype=float)
    balanced_compute = tokens.sum() / np.sum(tokens / compute)
    T_bal = T - compute.max() + balanced_compute
    return {"T": T, "T_bal": T_bal, "T_ideal": T_bal - exposed, "injected": injected,
            "exposed": exposed,
            "efficiency": compute.sum() / (w * T), "tokens": sum(r["tokens"] for r in recs)}


def percentiles(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"p50": float(np.median(v)), "p90": float(np.percentile(v, 90)),
            "p99": float(np.percentile(v, 99)), "mean": float(v.mean())}


def expected_scores(speeds: list[Optional[float]]) -> list[Optional[float]]:
    """Score a rank should have from its device times: speed / fastest speed (None if unknown)."""
    if not speeds or any(s is None for s in speeds):
        return [None] * len(speeds)
    top = max(speeds)
    return [s / top for s in speeds]


def rank_rows(steps: dict, ranks: list[dict], threshold: float) -> list[dict]:
    """Per-rank medians and straggler scores. `ranks`: [{rank, site, device, emulated_device, speed}]."""
    w = len(ranks)
    col = {key: [np.median([recs[r][key] for recs in steps.values()]) for r in range(w)]
           for key in ("wait_ms", "transfer_ms")}
    compute = [float(np.median([compute_ms(recs[r]) for recs in steps.values()])) for r in range(w)]
    fastest = min(compute)
    expected = expected_scores([info.get("speed") for info in ranks])
    rows = []
    for r, info in enumerate(ranks):
        score = fastest / compute[r]
        rows.append({"rank": r, "site": info["site"], "device": info["device"],
                     "emulated_device": info.get("emulated_device"),
                     "compute_ms_p50": compute[r], "wait_ms_p50": float(col["wait_ms"][r]),
                     "transfer_ms_p50": float(col["transfer_ms"][r]),
                     "relative_score": score, "expected_score": expected[r],
                     "flagged": bool(score < threshold)})
    return rows


def final_loss(records: list[dict], window: int = 10) -> Optional[float]:
    """Loss over all ranks over the last `window` recorded steps, each rank's weighted by its
    tokens (the global batch's loss; a plain mean when every rank has the same batch)."""
    if not records:
        return None
    last = max(r["step"] for r in records)
    tail = [r for r in records if r["step"] > last - window]
    return float(np.average([r["loss"] for r in tail], weights=[r["tokens"] for r in tail]))


def summarize(records: list[dict], ranks: list[dict], threshold: float = 0.75) -> dict:
    """The summary's numbers (without run_id/status, which the sink adds)."""
    w = len(ranks)
    steps = complete_steps(records, w)
    if not steps:
        return {"world_size": w, "steps_measured": 0}
    per_step = [step_values(recs) for recs in steps.values()]
    T = np.array([v["T"] for v in per_step])
    rows = rank_rows(steps, ranks, threshold)
    return {
        "schema_version": SCHEMA_VERSION,
        "world_size": w,
        "steps_measured": len(steps),
        "step_ms": percentiles(T),
        "tokens_per_s": float(sum(v["tokens"] for v in per_step) / T.sum() * 1000.0),
        "efficiency": float(np.median([v["efficiency"] for v in per_step])),
        # Over all measured time: a sync every H steps, which a median skips, counts here.
        "efficiency_overall": float(sum(v["efficiency"] * v["T"] for v in per_step) / T.sum()),
        "slowdown": {
            "balance": float(np.median([v["T"] / v["T_bal"] for v in per_step])),
            "network": float(np.median([v["T"] / (v["T"] - v["exposed"]) for v in per_step])),
            "total": float(np.median([v["T"] / v["T_ideal"] for v in per_step])),
        },
        "injected_ms_p50": float(np.median([v["injected"] for v in per_step])),
        "ranks": rows,
        "stragglers": [row["rank"] for row in rows if row["flagged"]],
        "final_loss": final_loss(records),
    }

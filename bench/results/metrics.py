"""Cross-rank attribution and the summary numbers. Pure functions on per-step records, so the
same code serves the live run, the tests' recomputation and the analysis of a run directory.

Definitions (docs/design.md, 'What the numbers mean'; docs/metrics.md spells out every formula):
  wait_ms     = max_r t_ready_r - t_ready_self      (idle, waiting for slower ranks)
  transfer_ms = t_synced_self - max_r t_ready_r     (exchange left exposed)
Per measured step s over W ranks:
  T_s       = max_r step_ms                          (the step ends when the slowest rank does)
  T_bal_s   = T_s - max_r compute + sum_r tokens / sum_r(tokens / compute)
              (= W / sum_r(1/compute) when every rank has the same batch)
  T_ideal_s = T_bal_s - exposed_s
  exposed_s = min(injected_s, max_r transfer_ms + max_r outer_ms): the injected link delay the
              step waited for (with several buckets, link time overlaps backward and is hidden)
Per rank (medians): relative_score = min_k compute_k / compute_r; expected_score the same from
the device model's speeds; flagged (a straggler) when slower than its own device should be:
relative_score < threshold x expected_score, or, emulating, compute > target / threshold.
Summary statistics are medians over measured (non-warmup) steps. MFU per rank against its own
device's peak, and the cluster's as sum achieved / sum peaks: bench.results.mfu.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Optional

import numpy as np

from bench.results import mfu

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
    compute = np.array([compute_ms(r) for r in recs])
    waited = max(r.get("transfer_ms") or 0.0 for r in recs) + max(r.get("outer_ms", 0.0) for r in recs)
    return cluster_values(max(r["step_ms"] for r in recs), compute,
                          np.array([r["tokens"] for r in recs], dtype=float),
                          max(r["injected_ms"] for r in recs), waited)


def cluster_values(T: float, compute: np.ndarray, tokens: np.ndarray, injected: float,
                   waited: float, counts: Optional[np.ndarray] = None,
                   slowest: Optional[float] = None) -> dict:
    """step_values' formulas on arrays: one entry per rank, or per class of `counts` identical
    ranks (bench.predict); `slowest` = the slowest rank's compute where it is not the slowest
    entry's (an expected order statistic)."""
    n = np.ones(len(compute)) if counts is None else np.asarray(counts, dtype=float)
    exposed = min(injected, waited)
    # The same work split in proportion to speed (tokens_r / compute_r): B / sum(speed); with
    # equal batches that is W / sum(1 / compute), with a balanced split it counts each rank's work.
    balanced_compute = np.sum(n * tokens) / np.sum(n * tokens / compute)
    T_bal = T - (compute.max() if slowest is None else slowest) + balanced_compute
    return {"T": T, "T_bal": T_bal, "T_ideal": T_bal - exposed, "injected": injected,
            "exposed": exposed, "efficiency": float(np.sum(n * compute) / (n.sum() * T)),
            "tokens": float(np.sum(n * tokens))}


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


def pacing_targets(ranks: list[dict], scale: float = 1.0) -> list[Optional[float]]:
    """Each rank's compute target when it emulates a device: its device compute ms x `scale`
    (1 when the records are in device time); None for a rank that runs at its own speed."""
    out = []
    for info in ranks:
        times = info.get("device_times") or {}
        emulated = info.get("emulated_device") and times.get("compute_ms")
        out.append(times["compute_ms"] * scale if emulated else None)
    return out


# Why a rank is (or is not) a straggler; summary.json ranks[].reason.
OK, DEVICE = "ok", "device"                  # not slow; slow only as its device predicts
BELOW_EXPECTED, OVER_TARGET = "below_expected", "over_target"   # flagged: slower than its device
BELOW_THRESHOLD = "below_threshold"          # flagged: slow, and no device model to excuse it
HOST = "host"                                # slow because this machine fell behind, no GPU's
HOST_SHARE = 0.2  # a flagged rank whose host lagged in this share of measured steps: `host`


def straggler_reason(score: float, expected: Optional[float], compute: float,
                     target: Optional[float], threshold: float) -> str:
    """Flag a rank for being slower than its own hardware should be, not for being slower
    than the fastest GPU: on a mixed fleet the second is not news (NVRx's individual vs
    relative scores). With threshold t: flagged when score < t x expected, or (emulating)
    compute > target / t; without a device model, when score < t."""
    if expected is None:
        return BELOW_THRESHOLD if score < threshold else OK
    if score < threshold * expected:
        return BELOW_EXPECTED
    if target is not None and compute * threshold > target:
        return OVER_TARGET
    return DEVICE if score < threshold else OK


def rank_rows(steps: dict, ranks: list[dict], threshold: float,
              targets: Optional[list] = None) -> list[dict]:
    """Per-rank medians and straggler scores. `ranks`: [{rank, site, device, emulated_device,
    speed, device_times}]; `targets`: compute targets in the records' time base (default:
    pacing_targets(ranks), right for device-time records)."""
    w = len(ranks)
    col = {key: [np.median([recs[r][key] for recs in steps.values()]) for r in range(w)]
           for key in ("wait_ms", "transfer_ms")}
    compute = [float(np.median([compute_ms(recs[r]) for recs in steps.values()])) for r in range(w)]
    fastest = min(compute)
    expected = expected_scores([info.get("speed") for info in ranks])
    targets = pacing_targets(ranks) if targets is None else targets
    rows = []
    for r, info in enumerate(ranks):
        score = fastest / compute[r]
        reason = straggler_reason(score, expected[r], compute[r], targets[r], threshold)
        if reason in FLAGGED and host_lag_share(steps, r) >= HOST_SHARE:
            reason = HOST  # emulation.lagged_steps=keep: the host's lag, kept, is not the GPU's
        rows.append({"rank": r, "site": info["site"], "device": info["device"],
                     "emulated_device": info.get("emulated_device"),
                     "compute_ms_p50": compute[r], "wait_ms_p50": float(col["wait_ms"][r]),
                     "transfer_ms_p50": float(col["transfer_ms"][r]),
                     "relative_score": score, "expected_score": expected[r],
                     "target_compute_ms": targets[r],
                     "flagged": reason in FLAGGED, "reason": reason,
                     **mfu.rank_mfu(steps, r, info),
                     "bound": info.get("bound"), "gpu_busy_share": info.get("gpu_busy_share"),
                     "device_stack": (info.get("device_times") or {}).get("stack")})
    return rows


FLAGGED = (BELOW_EXPECTED, OVER_TARGET, BELOW_THRESHOLD)


def host_lag_share(steps: dict, rank: int) -> float:
    """Share of the steps in which this rank's host fell behind the emulated timeline
    (bench.emulate.lag: records' host_lagged)."""
    if not steps:
        return 0.0
    return sum(bool(recs[rank].get("host_lagged")) for recs in steps.values()) / len(steps)


def over_steps(per_step: list[dict]) -> dict:
    """The summary's statistics over steps of step_values / cluster_values."""
    T = np.array([v["T"] for v in per_step])
    return {
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
    }


def final_loss(records: list[dict], window: int = 10) -> Optional[float]:
    """Loss over all ranks over the last `window` recorded steps, each rank's weighted by its
    tokens (the global batch's loss; a plain mean when every rank has the same batch)."""
    if not records:
        return None
    last = max(r["step"] for r in records)
    tail = [r for r in records if r["step"] > last - window]
    return float(np.average([r["loss"] for r in tail], weights=[r["tokens"] for r in tail]))


def summarize(records: list[dict], ranks: list[dict], threshold: float = 0.75,
              targets: Optional[list] = None) -> dict:
    """The summary's numbers (without run_id/status, which the sink adds). `targets`: see
    rank_rows."""
    w = len(ranks)
    steps = complete_steps(records, w)
    if not steps:
        return {"world_size": w, "steps_measured": 0}
    rows = rank_rows(steps, ranks, threshold, targets)
    return {
        "schema_version": SCHEMA_VERSION,
        "world_size": w,
        "steps_measured": len(steps),
        **over_steps([step_values(recs) for recs in steps.values()]),
        "ranks": rows,
        "stragglers": [row["rank"] for row in rows if row["flagged"]],
        "final_loss": final_loss(records),
        **mfu.cluster_mfu(rows, ranks),
    }

"""Model FLOPs utilisation, per device against its own peak (a mixed fleet has no single peak).

For rank r over the measured steps s (FLOPs from bench.rank.model's count, PaLM's 6N + attention):

  achieved_r     = sum_s flops_per_token_r x tokens_r,s / sum_s T_s      (TFLOP/s over the step)
  mfu_r          = achieved_r / peak_r
  mfu_compute_r  = sum_s flops_r,s / sum_s compute_r,s / peak_r           (while it computes)
  cluster mfu    = sum_r achieved_r / sum_r peak_r                        (not one peak for all)

peak_r is the catalog's dense peak of the rank's own device at the precision it computes in:
the real GPU's, or for an emulated rank the emulated device's at the device model's precision,
in device time (an emulated workload's FLOPs and tokens). A device the catalog does not know
(a CPU) has no peak: its MFU is null, and so is the cluster's.
"""
from __future__ import annotations


def rank_mfu(steps: dict, rank: int, info: dict) -> dict:
    """achieved_tflops, mfu, mfu_compute of one rank over `steps` ({step: [records by rank]})."""
    fpt, peak = info.get("flops_per_token"), info.get("peak_tflops")
    if not steps or fpt is None:
        return {"achieved_tflops": None, "mfu": None, "mfu_compute": None}
    flops = sum(fpt * recs[rank]["tokens"] for recs in steps.values())
    step_s = sum(max(r["step_ms"] for r in recs) for recs in steps.values()) / 1000.0
    compute_s = sum(recs[rank]["fwd_ms"] + recs[rank]["bwd_ms"] for recs in steps.values()) / 1000.0
    achieved = flops / step_s / 1e12
    return {"achieved_tflops": achieved,
            "mfu": achieved / peak if peak else None,
            "mfu_compute": flops / compute_s / 1e12 / peak if peak and compute_s > 0 else None}


def cluster_mfu(rows: list[dict], ranks: list[dict]) -> dict:
    """Sum of achieved over sum of peaks (over the step, and while computing); null when any
    rank's peak or FLOPs is unknown."""
    peaks = [info.get("peak_tflops") for info in ranks]
    if not rows or any(p is None for p in peaks) or any(r["achieved_tflops"] is None for r in rows):
        return {"mfu": None, "mfu_compute": None, "achieved_tflops": None, "peak_tflops": None}
    achieved = sum(r["achieved_tflops"] for r in rows)
    while_computing = sum(r["mfu_compute"] * p for r, p in zip(rows, peaks))
    return {"mfu": achieved / sum(peaks), "mfu_compute": while_computing / sum(peaks),
            "achieved_tflops": achieved, "peak_tflops": sum(peaks)}

"""The predicted steps, summarised under the names and formulas of a run's summary.json
(bench.results.metrics: docs/metrics.md), with each class of ranks weighted by its count."""
from __future__ import annotations

import numpy as np

from bench.predict.fleet import Fleet
from bench.predict.timeline import Step
from bench.results.metrics import cluster_values, over_steps


def step_values(s: Step, f: Fleet) -> dict:
    """bench.results.metrics.step_values for W ranks given as classes."""
    out = cluster_values(s.T, s.compute, f.tokens, s.injected, s.transfer + float(s.outer.max()),
                         counts=f.count, slowest=s.slowest_compute)
    out["inter_site_bytes"] = s.inter_site_bytes
    return out


def summarize(steps: list[Step], f: Fleet) -> dict:
    per = [step_values(s, f) for s in steps]
    out = {"world_size": f.world_size, "steps_predicted": len(steps), **over_steps(per)}
    out.update(inter_site_bytes_per_step=float(np.mean([v["inter_site_bytes"] for v in per])),
               ideal_tokens_per_s=f.ideal_tokens_per_s,
               ideal_share=out["tokens_per_s"] / f.ideal_tokens_per_s,
               groups=group_rows(steps, f))
    return out


def group_rows(steps: list[Step], f: Fleet) -> list[dict]:
    """One row per class of ranks: medians over the predicted steps, and the scores a run's
    rank table would show (fastest compute / this class's)."""
    compute = np.median([s.compute for s in steps], axis=0)
    wait = np.median([s.wait for s in steps], axis=0)
    transfer = float(np.median([s.transfer for s in steps]))
    T = float(np.median([s.T for s in steps]))
    rows = []
    for c in range(len(f.count)):
        rows.append({
            "device": f.device[c], "site": f.site[c], "count": int(f.count[c]),
            "micro_batch": round(float(f.tokens[c]) / f.seq_len),  # the workload's sequences
            "tokens_per_rank": float(f.tokens[c]),
            "fwd_ms": float(f.fwd[c]), "bwd_ms": float(f.bwd[c]), "opt_ms": float(f.opt[c]),
            "compute_ms_p50": float(compute[c]), "wait_ms_p50": float(wait[c]),
            "transfer_ms_p50": transfer, "relative_score": float(compute.min() / compute[c]),
            "tokens_per_s": float(f.count[c] * f.tokens[c] / T * 1000.0),
            "source": f.sources[c]})
    return rows

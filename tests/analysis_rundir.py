"""Build run directories by hand from per-step compute times, with every other number known.

Each step starts on every rank at the same instant (the previous step's latest end, plus
`skew_ms[r]` for rank r when given). Rank r is ready after data_ms + compute; the exchange ends
transfer_ms after the last rank is ready; the optimizer takes opt_ms. So, per step,
  T = data_ms + max_r compute_r + transfer_ms + opt_ms     (without skew)
`pad_share` of each compute is pacing's pad (inside it); steps in `lagged` are marked lagged;
every `gap_every` steps the next step starts `gap_ms` late (the ranks' gather between windows).
With `time_scale` D the run is an emulated one: its records are host time, D times device time.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml


def make_records(compute, warmup: int = 0, data_ms: float = 1.0, transfer_ms: float = 5.0,
                 opt_ms: float = 2.0, injected_ms: float = 0.0, skew_ms=None,
                 losses=None, pad_share: float = 0.0, lagged=(), gap_every: int = 0,
                 gap_ms: float = 0.0) -> list[dict]:
    """compute: S rows (steps) of W compute times (ms). Steps are numbered 0..S-1."""
    records, t = [], 100.0
    for step, row in enumerate(compute):
        w = len(row)
        if gap_every and step and step % gap_every == 0:
            t += gap_ms / 1000.0
        starts = [t + (skew_ms[r] if skew_ms else 0.0) / 1000.0 for r in range(w)]
        ready = [starts[r] + (data_ms + row[r]) / 1000.0 for r in range(w)]
        last = max(ready)
        synced = last + transfer_ms / 1000.0
        end = synced + opt_ms / 1000.0
        for r, c in enumerate(row):
            records.append({
                "step": step, "rank": r, "warmup": step < warmup,
                "t_start_s": starts[r], "t_ready_s": ready[r], "t_synced_s": synced, "t_end_s": end,
                "data_ms": data_ms, "fwd_ms": c / 3.0, "bwd_ms": c - c / 3.0, "pad_ms": pad_share * c,
                "wait_ms": (last - ready[r]) * 1000.0, "transfer_ms": transfer_ms,
                "injected_ms": injected_ms, "opt_ms": opt_ms, "step_ms": (end - starts[r]) * 1000.0,
                "tokens": 256, "loss": losses[step] if losses else 5.0 / (1.0 + step),
                "lagged": step in lagged})
        t = end
    return records


def build_run_dir(root: Path, compute, speeds=None, sites=None, threshold: float = 0.75,
                  time_scale: float | None = None, **record_args) -> Path:
    """Write config.yaml, metadata.json, ranks/rank_*.jsonl and summary.json under root/run."""
    from bench.results import metrics

    run = Path(root) / "run"
    (run / "ranks").mkdir(parents=True)
    w = len(compute[0])
    records = make_records(compute, **record_args)
    sites = sites or ["a"] * w
    speeds = speeds or [None] * w
    ranks = [{"rank": r, "host": "vm", "site": sites[r], "device": "cpu",
              "emulated_device": "H100-SXM", "configured_device": "H100-SXM", "speed": speeds[r],
              "clock_offset_s": 0.0} for r in range(w)]
    config = {"straggler_threshold": threshold, "train": {"steps": len(compute)}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    meta = {"schema_version": 1, "run_id": "hand-made", "status": "ok", "world_size": w,
            "versions": {"hetbench": "0.1.0", "torch": "test"}, "backend": "gloo",
            "hosts": ["vm"], "ranks": ranks, "entropy_floor": 1.0,
            "network": {"name": "campus",
                        "intra_site": {"latency_ms": 0.0, "bandwidth_gbps": None, "jitter_ms": 0.0},
                        "inter_site": {"latency_ms": 2.0, "bandwidth_gbps": 100.0, "jitter_ms": 0.0}}}
    (run / "metadata.json").write_text(json.dumps(meta))
    for r in range(w):
        lines = [json.dumps(rec) for rec in records if rec["rank"] == r]
        (run / "ranks" / f"rank_{r:05d}.jsonl").write_text("\n".join(lines) + "\n")
    summary = metrics.summarize(records, ranks, threshold)
    summary.update(run_id="hand-made", status="ok", entropy_floor=1.0)
    if time_scale is not None:
        summary.update(time_base="device", time_scale=time_scale)
    (run / "summary.json").write_text(json.dumps(summary))
    return run

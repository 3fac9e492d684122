"""The window: every `log_every` steps the ranks share their records in one all-gather (never
per step) as one float64 tensor of the numeric fields below, so that wait and transfer can be
attributed across ranks; rank 0's progress line is computed from it."""
from __future__ import annotations

from bench.results import metrics
from bench.results.records import as_record

# The numeric record fields every rank shares each window (bucket_bytes stays local).
GATHERED = ("step", "rank", "warmup", "t_start_s", "t_ready_s", "t_synced_s", "t_end_s", "data_ms",
            "fwd_ms", "bwd_ms", "pad_ms", "injected_ms", "opt_ms", "step_ms",
            "tokens", "loss", "fault_ms", "overrun_ms", "lag_ms", "host_lag_ms", "outer_ms",
            "inter_site_bytes", "time_scale")
# What rank 0 keeps: attributed records, with the window's verdict on host lag (bench.emulate.lag)
STORED = GATHERED + ("wait_ms", "transfer_ms", "host_lagged", "lagged")


def unpack(row: list[float]) -> dict:
    return as_record(GATHERED, row)


def show_progress(progress, window: list[dict], step: int) -> None:
    """tok/s over the window as summary.json counts it (all ranks' tokens / sum of the step
    times, a step lasting as long as its slowest rank), the last step's time and mean loss."""
    steps = metrics.complete_steps(window, world_of(window), measured_only=False)
    tokens = sum(r["tokens"] for recs in steps.values() for r in recs)
    spent_ms = sum(max(r["step_ms"] for r in recs) for recs in steps.values())
    last = steps[step]
    loss = sum(r["loss"] for r in last) / len(last)
    progress.update(step, tokens / spent_ms * 1000.0, max(r["step_ms"] for r in last), loss)


def world_of(window: list[dict]) -> int:
    return 1 + max(r["rank"] for r in window)

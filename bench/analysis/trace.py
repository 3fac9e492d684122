"""trace.json in Chrome trace-event format (opens in Perfetto or chrome://tracing).

One process per rank (pid = rank, named by process_name metadata), one thread in it. Each step
is a complete event ("ph": "X") spanning t_start..t_end, with its phases nested inside as complete
events: data, forward, backward, wait, transfer, optimizer (and outer sync: localsgd, diloco). ts/dur are microseconds since the
earliest step start of the run, on the aligned clock. injected_ms (the link delay) and the loss
ride in "args"; with `internals`, the emulation's own marks too: pad_ms (compute pacing's share of
forward + backward) and lagged (this machine fell behind the emulated timeline in that step).
"""
from __future__ import annotations

import json
from pathlib import Path

from bench.analysis.plots_time import phase_spans
from bench.results.rundir import Run


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 3)


def step_args(rec: dict, internals: bool) -> dict:
    args = {"step_ms": rec["step_ms"], "injected_ms": rec["injected_ms"], "loss": rec["loss"]}
    if internals:
        args.update(pad_ms=rec["pad_ms"], lagged=bool(rec.get("lagged")))
    return args


def events(run: Run, internals: bool = False) -> list[dict]:
    t0 = min(r["t_start_s"] for recs in run.all_steps.values() for r in recs)
    out = []
    for rank in range(run.world_size):
        out.append({"ph": "M", "name": "process_name", "pid": rank, "tid": 0,
                    "args": {"name": run.label(rank)}})
        out.append({"ph": "M", "name": "process_sort_index", "pid": rank, "tid": 0,
                    "args": {"sort_index": rank}})
        out.append({"ph": "M", "name": "thread_name", "pid": rank, "tid": 0,
                    "args": {"name": f"rank {rank} steps"}})
    for step, recs in sorted(run.all_steps.items()):
        for rec in recs:
            rank = rec["rank"]
            out.append({"ph": "X", "name": f"step {step}", "cat": "warmup" if rec["warmup"] else "step",
                        "pid": rank, "tid": 0, "ts": _us(rec["t_start_s"] - t0),
                        "dur": _us(rec["t_end_s"] - rec["t_start_s"]),
                        "args": step_args(rec, internals)})
            for name, (a, b) in phase_spans(rec).items():
                out.append({"ph": "X", "name": name, "cat": "phase", "pid": rank, "tid": 0,
                            "ts": _us(a - t0), "dur": _us(max(0.0, b - a)), "args": {"step": step}})
    return out


def write(run: Run, path: Path, internals: bool = False) -> Path:
    doc = {"traceEvents": events(run, internals), "displayTimeUnit": "ms",
           "otherData": {"run_id": run.metadata.get("run_id", run.path.name)}}
    path.write_text(json.dumps(doc, separators=(",", ":")))
    return path

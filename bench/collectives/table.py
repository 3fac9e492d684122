"""Rows, the printed table and the JSON, with nccl-tests' column names and units.

A row: op, scope, ranks (R), size (B), count (elements), type, redop, root, time (us), algbw and
busbw (GB/s), iters, warmup; with an emulated link also model_time (us) and model_busbw (GB/s),
the collective model's figures for the same row (bench.costs.links), and late_share, the share of
the timed windows whose real transfer overran the model (mean over ranks; bench.collectives.wire)."""
from __future__ import annotations

from bench.collectives import spec

SCHEMA_VERSION = 1
UNITS = {"size": "B", "count": "elements", "time": "us", "algbw": "GB/s", "busbw": "GB/s",
         "model_time": "us", "model_busbw": "GB/s"}

# (key, header, width, format) in print order; headers carry units, as nccl-tests' do.
COLUMNS = [("op", "op", 15, "{}"), ("scope", "scope", 6, "{}"), ("ranks", "R", 3, "{}"),
           ("size", "size(B)", 12, "{}"), ("count", "count(elements)", 15, "{}"),
           ("type", "type", 6, "{}"), ("redop", "redop", 6, "{}"), ("root", "root", 5, "{}"),
           ("time", "time(us)", 12, "{:.1f}"), ("algbw", "algbw(GB/s)", 12, "{:.4f}"),
           ("busbw", "busbw(GB/s)", 12, "{:.4f}")]
MODEL_COLUMNS = [("model_time", "model_time(us)", 15, "{:.1f}"),
                 ("model_busbw", "model_busbw(GB/s)", 18, "{:.4f}")]


def bandwidths(op: str, ranks: int, nbytes: int, time_us: float) -> tuple[float, float]:
    """(algbw, busbw) in GB/s (1e9 bytes/s), as nccl-tests: size / time, times the bus factor."""
    if time_us <= 0:
        return float("nan"), float("nan")
    algbw = nbytes / (time_us * 1e-6) / 1e9
    return algbw, algbw * spec.bus_factor(op, ranks)


def make_row(op: str, scope: str, ranks: int, size: int, time_us: float, iters: int,
             warmup: int, model_ms: float | None) -> dict:
    """One row; `size` is the nominal size, the row reports the bytes really moved."""
    count, nbytes = spec.layout(op, size, ranks)
    algbw, busbw = bandwidths(op, ranks, nbytes, time_us)
    row = {"op": op, "scope": scope, "ranks": ranks, "size": nbytes, "count": count,
           "type": spec.DTYPE, "redop": spec.redop(op), "root": spec.root(op),
           "time": time_us, "algbw": algbw, "busbw": busbw, "iters": iters, "warmup": warmup}
    if model_ms is not None:
        model_us = model_ms * 1000.0
        row["model_time"] = model_us
        row["model_busbw"] = bandwidths(op, ranks, nbytes, model_us)[1] if model_us > 0 else None
    return row


def header(emulated: bool) -> str:
    cols = COLUMNS + (MODEL_COLUMNS if emulated else [])
    return "#" + " ".join(h.rjust(w) for _, h, w, _ in cols)[1:]


def format_row(row: dict, emulated: bool) -> str:
    cols = COLUMNS + (MODEL_COLUMNS if emulated else [])
    return " ".join(_cell(row.get(key), fmt).rjust(width) for key, _, width, fmt in cols)


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return fmt.format(value)


def banner(plan: spec.Plan, world: int, sites: dict, links: dict, emulated: bool) -> list[str]:
    """nccl-tests-style header lines: every setting that shaped the numbers."""
    sizes = plan.sizes()
    lines = [f"# hetbench collectives: {world} ranks; sites "
             + ", ".join(f"{s}: {m}" for s, m in sites.items()),
             f"# ops {','.join(plan.ops)}  scopes {','.join(plan.scopes)}  minBytes "
             f"{plan.min_bytes}  maxBytes {plan.max_bytes} ({len(sizes)} sizes, x2)  warmup "
             f"{plan.warmup}  iters {plan.iters} (past {spec.human_size(spec.SCALE_ITERS_FROM)}: "
             f"fewer with the size, at least {plan.min_iters})  type float32  time: average over "
             "ranks"]
    for kind, link in links.items():
        bw = f"{link['bandwidth_gbps']} Gb/s" if link["bandwidth_gbps"] else "unlimited"
        lines.append(f"# {kind}: latency {link['latency_ms']} ms, bandwidth {bw}")
    lines.append("# links emulated: the modelled delay per collective in real ms (D = 1), the real "
                 "transfer inside it; jitter not emulated" if emulated else
                 "# links not emulated: this machine's own transport")
    return lines

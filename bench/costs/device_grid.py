"""Measured device times against the device model: read a grid, time each row by the model,
and solve the model's fitted constants from the rows marked for it.

A grid (what `scripts/gpu_check.py --only device_grid` writes on a real GPU):

    {"device": "H200", "source": "...", "rows": [{"model": {"n_layer", "n_head", "n_embd",
     "vocab"}, "micro_batch", "seq_len", "precision", "fwd_ms", "bwd_ms", "opt_ms"}, ...]}

Optional per row: "stack" (eager), "compute_ms" (forward + backward where the split is not
known), "compute_ms_range" ([min, max] over a row's timed steps: its spread), "step_ms"
(forward + backward + optimizer), "tokens_per_s" (per GPU), "opt_shards"
(optimizer state split over N GPUs, FSDP), "role" (what the fit solves from it), "note". A file
may hold one grid or a list of them. Rows of one configuration measured in several runs are
one point with a range: a launch-bound point passes inside [min, max] +- 10%, a compute-bound
one within 10% of the median.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

from bench.costs import devices, roofline

TOLERANCE = 0.10


@dataclass(frozen=True)
class Point:
    device: str
    row: dict
    measured: list  # one measured value per run of this configuration (ms, what `quantity` says)
    quantity: str  # compute_ms | step_ms

    @property
    def label(self) -> str:
        m = self.row["model"]
        return (f"{self.device} {m['n_layer']}x{m['n_embd']} {self.row['micro_batch']}x"
                f"{self.row['seq_len']} {self.row['precision']} {self.row.get('stack', 'eager')}")


def load(paths) -> list[Point]:
    """Every point of the grids in `paths`, runs of one configuration merged."""
    points: dict = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        for grid in data if isinstance(data, list) else [data]:
            for row in grid["rows"]:
                quantity, value = _measured(row)
                key = (grid["device"], json.dumps({k: v for k, v in row.items()
                                                   if k in _CONFIG_KEYS}, sort_keys=True))
                runs = [value, *row.get("compute_ms_range", [])]  # a timed row's step spread
                if key in points:
                    points[key].measured.extend(runs)
                else:
                    points[key] = Point(grid["device"], row, runs, quantity)
    return list(points.values())


_CONFIG_KEYS = ("model", "micro_batch", "seq_len", "precision", "stack", "opt_shards")


def _measured(row: dict) -> tuple[str, float]:
    if "tokens_per_s" in row:
        return "step_ms", row["micro_batch"] * row["seq_len"] / row["tokens_per_s"] * 1e3
    if "step_ms" in row:
        return "step_ms", row["step_ms"]
    if "compute_ms" in row:
        return "compute_ms", row["compute_ms"]
    return "compute_ms", row["fwd_ms"] + row["bwd_ms"]


def workload(row: dict) -> devices.Workload:
    m = row["model"]
    layers, embd, vocab, seq = m["n_layer"], m["n_embd"], m["vocab"], row["seq_len"]
    return devices.Workload(
        flops_per_token=devices.gpt_flops_per_token(vocab, seq, layers, embd),
        tokens=row["micro_batch"] * seq, n_layer=layers,
        n_params=devices.gpt_params(vocab, seq, layers, embd) / row.get("opt_shards", 1),
        precision=row["precision"], n_embd=embd, seq_len=seq, vocab=vocab,
        stack=row.get("stack", "eager"))


def modelled(point: Point, cal: roofline.Calibration = roofline.CALIBRATION) -> devices.PhaseTimes:
    return devices.phase_times(point.device, workload(point.row), cal=cal)


def value(point: Point, times: devices.PhaseTimes) -> float:
    return times.compute_ms + (times.opt_ms if point.quantity == "step_ms" else 0.0)


def error(point: Point, cal: roofline.Calibration = roofline.CALIBRATION) -> dict:
    """The model against the point: relative error to the median run, and whether it passes
    (launch-bound: inside the runs' range +- 10%; compute-bound: within 10% of the median)."""
    times = modelled(point, cal)
    model, runs = value(point, times), point.measured
    median = statistics.median(runs)
    if times.regime == "launch-bound":
        lo, hi = min(runs) * (1 - TOLERANCE), max(runs) * (1 + TOLERANCE)
        ok = lo <= model <= hi
    else:
        ok = abs(model / median - 1) <= TOLERANCE
    out = {"point": point.label, "role": point.row.get("role", "check"), "regime": times.regime,
           "measured_ms": runs, "modelled_ms": round(model, 3), "error": model / median - 1,
           "passes": ok}
    if "fwd_ms" in point.row:
        out["phase_error"] = {"fwd": times.fwd_ms / point.row["fwd_ms"] - 1,
                              "bwd": times.bwd_ms / point.row["bwd_ms"] - 1}
    return out


def ratio(points: list[Point], cal: roofline.Calibration = roofline.CALIBRATION) -> dict:
    """Modelled and measured step ratio of the two points with role `ratio` (slow / fast)."""
    pair = sorted((p for p in points if p.row.get("role") == "ratio"),
                  key=lambda p: -statistics.median(p.measured))
    if len(pair) != 2:
        return {}
    slow, fast = pair
    measured = statistics.median(slow.measured) / statistics.median(fast.measured)
    model = value(slow, modelled(slow, cal)) / value(fast, modelled(fast, cal))
    return {"pair": f"{slow.device} / {fast.device}", "measured": measured, "modelled": model,
            "error": model / measured - 1}


def fit(points: list[Point], base: roofline.Calibration = roofline.CALIBRATION) -> roofline.Calibration:
    """Solve the fitted constants from their rows, in order: host cost per dispatch (role
    `host`, each run), per cast (`cast`), fp32 matmul efficiency (`fp32`), Hopper's sustained
    factor (`hopper`), Ampere's from the step ratio (`ratio`)."""
    cal = base
    by_role = {}
    for p in points:
        by_role.setdefault(p.row.get("role"), []).append(p)
    per_run = sorted(_solve(lambda us, p=p, v=v: _total(p, replace(cal, host_us=us)) - v, 1, 500)
                     for p in by_role["host"] for v in p.measured)
    cal = replace(cal, host_us=round(statistics.median(per_run), 1),
                  host_us_range=(round(per_run[0], 1), round(per_run[-1], 1)))
    cal = _fit_one(cal, by_role["cast"][0], "cast_us", 0.1, 200, 1)
    cal = _fit_one(cal, by_role["fp32"][0], "fp32_gemm", 0.05, 1.0, 3)
    cal = _fit_sustained(cal, by_role["hopper"][0], "hopper")
    def ratio_error(f):  # noqa: E306 - the ratio falls as Ampere's factor grows
        return -ratio(points, _with_sustained(cal, "ampere", f))["error"]
    return _with_sustained(cal, "ampere", round(_solve(ratio_error, 0.05, 1.0), 3))


def _total(point: Point, cal) -> float:
    return value(point, modelled(point, cal))


def _fit_one(cal, point: Point, field: str, lo: float, hi: float, digits: int):
    target = statistics.median(point.measured)
    sign = 1 if field == "cast_us" else -1  # more host time: longer; more efficiency: shorter
    solved = _solve(lambda x: sign * (_total(point, replace(cal, **{field: x})) - target), lo, hi)
    return replace(cal, **{field: round(solved, digits)})


def _fit_sustained(cal, point: Point, generation: str):
    target = statistics.median(point.measured)
    f = _solve(lambda x: target - _total(point, _with_sustained(cal, generation, x)), 0.05, 1.0)
    return _with_sustained(cal, generation, round(f, 3))


def _with_sustained(cal, generation: str, factor: float):
    table = dict(cal.sustained)
    table[generation] = factor
    return replace(cal, sustained=tuple(sorted(table.items())))


def _solve(f, lo: float, hi: float, iterations: int = 60) -> float:
    """x in [lo, hi] with f(x) = 0, f increasing (bisection)."""
    for _ in range(iterations):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    return (lo + hi) / 2

"""`hetbench predict -m ...`: a sweep of predictions (Hydra's sweep syntax and an experiment's
sweeper params, as `hetbench run -m`), written with plots and one finding per plot.

  runs/<id>-predict/predictions.json, predictions.csv   one row per point
  runs/<id>-predict/plots/efficiency_vs_world.png        per strategy, at one latency (2 ms)
  runs/<id>-predict/plots/efficiency_vs_latency.png      per strategy, at one world size (10,000)
  runs/<id>-predict/findings.md                          the sentences (also printed)

Efficiency here is `efficiency_overall` (device compute over all the time, periodic syncs
included), so that diloco's outer syncs count at their rate.
"""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from bench import config as config_mod
from bench.driver.command import new_run_id
from bench.errors import ConfigError
from bench.predict import as_fleet_job, predict
from bench.predict.plots import efficiency_vs
from bench.results import files
from bench.sweeps import plan as sweep_mod

WORLD = "predict.world_size"
LATENCY = "network.inter_site.latency_ms"
COLUMNS = ("world_size", "strategy", "inter_site_latency_ms", "step_ms_p50", "step_ms_mean",
           "tokens_per_s", "efficiency", "efficiency_overall", "slowdown_balance",
           "slowdown_network", "slowdown_total", "ideal_share", "inter_site_bytes_per_step",
           "straggler_excess_ms", "algo", "proto", "nodes", "bucket_ms", "seconds")


def run_sweep(overrides: list[str], out_root: str | None = None) -> int:

    points = sweep_mod.expand(overrides)
    configs = []
    for point in points:  # every point composes and validates before any is predicted
        try:
            configs.append(as_fleet_job(config_mod.compose(point.overrides)))
        except ConfigError as err:
            raise ConfigError(err.key, err.value, f"{err.fix}\n(in sweep point {point.name})") from None
    out = Path(out_root or configs[0].out_root) / f"{new_run_id()}-predict"
    rows = []
    for point, cfg in zip(points, configs):
        started = time.perf_counter()
        result = predict(cfg)
        rows.append(_row(point, cfg, result, time.perf_counter() - started))
        print(f"[{point.index + 1}/{len(points)}] {point.name}: step {result['step_ms']['p50']:.1f} ms, "
              f"efficiency {result['efficiency_overall']:.1%}", flush=True)
    findings = write(out, rows, [k for p in points for k in p.swept])
    print("\n".join(findings))
    print(f"predictions: {out}")
    return 0


def _row(point, cfg, result: dict, seconds: float) -> dict:
    s = result["slowdown"]
    return {"point": point.name, "swept": point.swept, "world_size": result["world_size"],
            "strategy": result["strategy"],
            "inter_site_latency_ms": float(cfg.network.inter_site.latency_ms),
            "step_ms_p50": result["step_ms"]["p50"], "step_ms_mean": result["step_ms"]["mean"],
            "tokens_per_s": result["tokens_per_s"], "efficiency": result["efficiency"],
            "efficiency_overall": result["efficiency_overall"], "slowdown_balance": s["balance"],
            "slowdown_network": s["network"], "slowdown_total": s["total"],
            "ideal_share": result["ideal_share"],
            "inter_site_bytes_per_step": result["inter_site_bytes_per_step"],
            "straggler_excess_ms": result["straggler_cost"]["excess_ms"],
            "algo": result["collective"]["algo"], "proto": result["collective"]["proto"],
            "nodes": result["collective"]["nodes"], "bucket_ms": result["collective"]["bucket_ms"],
            "seconds": seconds}


def write(out: Path, rows: list[dict], swept: list[str]) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    files.write_json_atomic(out / "predictions.json", {
        "schema_version": 1, "time_base": "device", "swept_keys": list(dict.fromkeys(swept)),
        "points": rows})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["point", *COLUMNS], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    (out / "predictions.csv").write_text(buf.getvalue())
    findings = []
    # One plot and finding per swept axis, the other held at one value: (x, held, preferred
    # held value, plot name, log x, the held value's label, the finding).
    axes = (("world_size", "inter_site_latency_ms", 2.0, "efficiency_vs_world", True,
             lambda v: f"inter-site latency {v:g} ms", finding_world),
            ("inter_site_latency_ms", "world_size", 10_000, "efficiency_vs_latency", False,
             lambda v: f"{v:,} ranks", finding_latency))
    for x, held, prefer, name, log_x, label, finding in axes:
        picked, value = at_one(rows, held, prefer=prefer)
        if len({r[x] for r in picked}) > 1:
            efficiency_vs(picked, x, label(value), out / "plots" / f"{name}.png", log_x=log_x)
            findings.append(finding(picked, value))
    (out / "findings.md").write_text("\n\n".join(findings) + "\n")
    return findings


def at_one(rows: list[dict], key: str, prefer: float) -> tuple[list[dict], float]:
    """The rows at one value of `key`: `prefer` if swept, else the closest value swept."""
    values = sorted({r[key] for r in rows})
    chosen = min(values, key=lambda v: (abs(v - prefer), v))
    return [r for r in rows if r[key] == chosen], chosen


def _by_strategy(rows: list[dict], x: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r[x]):
        out.setdefault(r["strategy"], []).append(r)
    return out


def finding_world(rows: list[dict], latency: float) -> str:
    """One sentence: how each strategy's efficiency moves from the smallest to the largest
    world size, and which holds up best at the largest."""
    lines = _by_strategy(rows, "world_size")
    parts = [f"{name} {pts[0]['efficiency_overall']:.1%} -> {pts[-1]['efficiency_overall']:.1%}"
             for name, pts in lines.items()]
    first, last = min(r["world_size"] for r in rows), max(r["world_size"] for r in rows)
    best = max(lines, key=lambda n: lines[n][-1]["efficiency_overall"])
    step = lines[best][-1]["step_ms_p50"]
    falling = [n for n, pts in lines.items()
               if pts[-1]["efficiency_overall"] < pts[0]["efficiency_overall"]]
    noisy = any(r["straggler_excess_ms"] > 0 for r in rows)
    causes = "each bucket's latency over more nodes" + (" and the slowest of W ranks both grow"
                                                         if noisy else " grows")
    why = (f"every strategy loses efficiency as the fleet grows: {causes} with W"
           if len(falling) == len(lines) else
           f"{', '.join(falling) or 'no strategy'} lose(s) efficiency as the fleet grows")
    return (f"Efficiency vs world size at {latency:g} ms between campuses, from {first:,} to "
            f"{last:,} GPUs: {'; '.join(parts)}. At {last:,} GPUs {best} holds up best "
            f"(step {step:,.0f} ms); {why}. {_picks(lines)}")


def _picks(lines: dict[str, list[dict]]) -> str:
    """Which algorithm NCCL's tuner picks for each strategy's largest bucket, smallest to
    largest world (bench.costs.nccl): the tree's latency grows with log2(nodes), the ring's
    with the nodes themselves, so the pick moves to trees as the fleet grows."""
    if not all("algo" in p for pts in lines.values() for p in pts):
        return ""
    parts = []
    for name, pts in lines.items():
        a, b = pts[0], pts[-1]
        parts.append(f"{name} {a['algo']}/{a['proto']} ({a['bucket_ms']:.1f} ms a bucket over "
                     f"{a['nodes']:,} nodes) -> {b['algo']}/{b['proto']} ({b['bucket_ms']:.1f} ms "
                     f"over {b['nodes']:,})")
    return "NCCL's tuner model picks, per largest bucket: " + "; ".join(parts) + "."


def finding_latency(rows: list[dict], world: int) -> str:
    """One sentence: what raising the inter-site latency costs each strategy at one size."""
    lines = _by_strategy(rows, "inter_site_latency_ms")
    lo, hi = min(r["inter_site_latency_ms"] for r in rows), max(r["inter_site_latency_ms"] for r in rows)
    parts = [f"{name} {pts[0]['efficiency_overall']:.1%} -> {pts[-1]['efficiency_overall']:.1%}"
             for name, pts in lines.items()]
    loss = {n: 1 - pts[-1]["efficiency_overall"] / pts[0]["efficiency_overall"] for n, pts in lines.items()}
    flattest = min(loss, key=loss.get)
    return (f"Efficiency vs inter-site latency at {world:,} GPUs, {lo:g} -> {hi:g} ms: "
            f"{'; '.join(parts)}. {flattest} is the least sensitive (it loses "
            f"{loss[flattest]:.0%} of its efficiency; the most sensitive loses "
            f"{max(loss.values()):.0%}).")

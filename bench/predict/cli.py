"""`hetbench predict` entry: one prediction, a re-prediction of a run (--from), or a sweep (-m)."""
from __future__ import annotations

import json
import time


def main(args) -> int:
    if args.links:
        args.overrides = [*args.overrides, f"predict.links_from={args.links}"]
    if args.from_run:
        return _from_run(args)
    if args.multirun:
        from bench.predict.scale import run_sweep

        return run_sweep(args.overrides, out_root=args.out_root)
    from bench import config as config_mod
    from bench.predict import as_fleet_job, predict

    cfg = as_fleet_job(config_mod.compose(args.overrides))
    started = time.perf_counter()
    result = predict(cfg)
    result["seconds"] = time.perf_counter() - started
    print(json.dumps(result) if args.json else format_prediction(result))
    return 0


def _from_run(args) -> int:
    from pathlib import Path

    from bench.predict.run import format_side_by_side, predict_run

    result = predict_run(Path(args.from_run), args.overrides)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['run_dir']}: measured vs predicted (device ms)")
        print(format_side_by_side(result))
    return 0


def format_prediction(r: dict) -> str:
    s = r["slowdown"]
    lines = [
        f"predicted: {r['world_size']:,} ranks, {r['cluster']} over {r['network']}, strategy "
        f"{r['strategy']}, {r['precision']}, {r['buckets']} bucket(s) (device time, "
        f"{r['seconds'] * 1000:.0f} ms to predict)",
        f"step {r['step_ms']['p50']:.2f} ms p50 ({r['step_ms']['mean']:.2f} mean) | "
        f"{r['tokens_per_s']:,.0f} tok/s = {r['ideal_share']:.1%} of the sum-of-speeds ideal | "
        f"efficiency {r['efficiency']:.1%}",
        f"slowdown: balance {s['balance']:.3f}x  network {s['network']:.3f}x  total {s['total']:.3f}x"
        f" | inter-site {r['inter_site_bytes_per_step'] / 1e6:,.1f} MB/step",
    ]
    st = r["straggler_cost"]
    if st["excess_ms"] > 0:
        lines.append(f"stragglers: the slowest of {r['world_size']:,} ranks computes "
                     f"{st['slowest_compute_ms']:.2f} ms vs {st['without_noise_ms']:.2f} ms "
                     f"without variation (+{st['excess_ms']:.2f} ms)")
    lines.append(f"{'device':<10} {'site':<6} {'ranks':>8} {'batch':>5} {'compute':>9} {'opt':>7} "
                 f"{'wait':>8} {'transfer':>9} {'score':>6}")
    for g in r["groups"]:
        lines.append(f"{g['device']:<10} {g['site']:<6} {g['count']:>8,} {g['micro_batch']:>5} "
                     f"{g['compute_ms_p50']:>9.2f} {g['opt_ms']:>7.2f} {g['wait_ms_p50']:>8.2f} "
                     f"{g['transfer_ms_p50']:>9.2f} {g['relative_score']:>6.2f}")
    return "\n".join(lines)


"""Combined remedies on a fleet with both a slow device and a slow link: diloco with the
balanced split against each of its parts, emulated and predicted.

    python benchmarks/combined.py [--repeats 2]

The fleet is mixed4 (two H100 on site a; a B200 and an A100 on site b) with 50 ms of inter-site
latency, and the remedies experiment's workload and short runs (GPT-2 124M emulated, the tiny
model as its proxy, 20 steps of which 4 warm-up, micro_batch 8, seq_len 16, sync_every 16,
bucket_cap_mb 1000). Three strategies:

  diloco+balanced   strategy=diloco strategy.split=balanced (each site splits its own share)
  balanced          strategy=balanced (ddp with the balanced split)
  diloco            strategy=diloco (uniform split)

Emulated: one D for every run (a short calibrated run of the most demanding point, passed as
emulation.time_scale, as a sweep's points share one), then --repeats rounds in which each
strategy runs once, the order rotating from round to round (A/B interleaved, so a slower spell
of this shared machine falls on all of them). tokens/s per strategy is the median over rounds;
ratios are of those medians. Predicted: `hetbench predict` of the same configs (deterministic).

Last lines: combined_<figure>=<value>.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from remedies import (
    BASE as REMEDIES_BASE,  # benchmarks/ is on sys.path when run as a script
)
from remedies import run as remedies_run

from bench import config as config_mod
from bench.predict import as_fleet_job, predict
from bench.results.files import read_json

LINK = ["network.inter_site.latency_ms=50"]  # on top of benchmarks/remedies.py's BASE
STRATEGIES = {"diloco+balanced": ["strategy=diloco", "strategy.split=balanced"],
              "balanced": ["strategy=balanced"],
              "diloco": ["strategy=diloco"]}


def run(out: Path, *overrides: str) -> dict:
    """One `hetbench run` of the remedies benchmark at 50 ms; its summary."""
    return read_json(remedies_run(out, *LINK, *overrides) / "summary.json")


def emulated(out: Path, repeats: int) -> tuple[dict, float]:
    """({strategy: [summary per round]}, the shared D)."""
    scale = run(out / "calibrate", "train.steps=12", "train.warmup_steps=2",
                *STRATEGIES["balanced"])["time_scale"]
    print(f"every emulated run at time_scale D = {scale:.2f}", flush=True)
    names = list(STRATEGIES)
    got: dict = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            summary = run(out / "runs", f"emulation.time_scale={scale!r}", *STRATEGIES[name])
            assert summary["strategy"]["name"] == name, summary["strategy"]
            got[name].append(summary)
            print(f"  round {r + 1} {name:<16} {summary['tokens_per_s']:>12,.0f} tok/s  "
                  f"step p50 {summary['step_ms']['p50']:7.1f} ms  status {summary['status']}",
                  flush=True)
    return got, scale


def predicted() -> dict:
    out = {}
    for name, overrides in STRATEGIES.items():
        result = predict(as_fleet_job(config_mod.compose([*REMEDIES_BASE, *LINK, *overrides])))
        assert result["strategy"] == name
        out[name] = result
    return out


def table(title: str, tps: dict, step: dict) -> None:
    combo = tps["diloco+balanced"]
    print(f"\n{title}")
    print(f"{'strategy':<17}{'tokens/s':>12}{'step p50 ms':>13}{'combined / this':>17}")
    for name in STRATEGIES:
        print(f"{name:<17}{tps[name]:>12,.0f}{step[name]:>13.1f}{combo / tps[name]:>16.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="emulated rounds (each runs all three)")
    args = parser.parse_args()
    started = time.perf_counter()
    pred = predicted()
    with tempfile.TemporaryDirectory(prefix="hetbench-combined-") as tmp:
        runs, scale = emulated(Path(tmp), args.repeats)
    med = {n: statistics.median(s["tokens_per_s"] for s in runs[n]) for n in STRATEGIES}
    med_step = {n: statistics.median(s["step_ms"]["p50"] for s in runs[n]) for n in STRATEGIES}
    table(f"emulated (device time, D = {scale:.2f}, median of {args.repeats} interleaved rounds)",
          med, med_step)
    table("predicted (hetbench predict, same configs)",
          {n: p["tokens_per_s"] for n, p in pred.items()},
          {n: p["step_ms"]["p50"] for n, p in pred.items()})
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    for kind, tps in (("emulated", med), ("predicted", {n: p["tokens_per_s"] for n, p in pred.items()})):
        for name in STRATEGIES:
            print(f"combined_{kind}_tokens_per_s_{name.replace('+', '_')}={tps[name]:.0f}")
        for part in ("balanced", "diloco"):
            print(f"combined_{kind}_over_{part}={tps['diloco+balanced'] / tps[part]:.3f}")


if __name__ == "__main__":
    main()

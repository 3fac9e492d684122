"""Does the emulator do what its model says, in the emulated cluster's time? Runs a grid of
emulated clusters and compares each point's measured median step (device ms) with the step the
device time model and the link model predict.

    python benchmarks/fidelity.py [--steps 40] [--quick] [--worlds 4,8] [overrides...]

Grid: world size 4 and 8; homogeneous H100s, H100s with one at half speed (a throttled GPU), an
A100/H100/B200 mix (all split over two sites); inter-site latency 0, 5, 20 ms; inter-site
bandwidth 1 and 100 Gb/s.

Prediction for one point, all in device ms, from the run's own metadata:
    T_model = max_r (device fwd_r + bwd_r)              the slowest rank's device compute
            + sum over buckets of the link formula      2(W-1) * (mean_hops(alpha) + (n/W)/min(beta))
            + mean jitter per bucket                    jitter_ms
            + max_r device opt_r                        the modelled optimizer step
What T_model leaves out is this machine's own cost (a real transfer slower than the emulated wire,
wake-up lag, sampling the batch), which shows only where the phases' slack cannot absorb it; the
host(%) column is the run's own estimate of it (summary.json emulation.host_share).
The measured step leaves out the steps in which some host fell behind the timeline, as the summary
does (lagged(%) says how many; bench.emulate.lag). Last line: fidelity_median_err_pct=<x>
max_err_pct=<y>.

Every run of a world size shares one D (emulation.time_scale from `hetbench calibrate`), as a
sweep's points do, so that the points differ only by cluster and link.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import config
from bench.costs import links, topology
from bench.results import metrics, timebase
from bench.results.outroot import run_dirs
from bench.results.ranklog import read_rank_logs

HETBENCH = str(Path(sys.executable).parent / "hetbench")


def clusters(world: int) -> dict[str, str]:
    half = world // 2

    def groups(*specs):
        return "cluster.groups=[" + ",".join(
            f"{{device:{d},count:{n},site:{s},speed:{v}}}" for d, n, s, v in specs if n) + "]"

    # The tiny model is launch-bound on every GPU, so A100, H100 and B200 take the same device
    # time on it; "throttled" (one H100 at half speed) is the heterogeneous case.
    return {
        "homog": groups(("H100", half, "a", 1), ("H100", half, "b", 1)),
        "throttled": groups(("H100", half, "a", 1), ("H100", half - 1, "b", 1), ("H100", 1, "b", 0.5)),
        "mix": groups(("A100", world // 4, "a", 1), ("H100", world // 4, "a", 1),
                      ("H100", world // 4, "b", 1), ("B200", world // 4, "b", 1)),
    }


def run_point(out: Path, overrides: list[str]) -> Path:
    before = set(run_dirs(out))
    cmd = [HETBENCH, "run", f"out_root={out}", "logger=none", *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"point failed: {' '.join(overrides)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    (new,) = set(run_dirs(out)) - before
    return new


def measured(run_dir: Path) -> tuple[float, dict, list, float]:
    """Median device step time over the steps in which no host lagged (what the summary
    reports: bench.emulate.lag), metadata, device-time records, and the share of measured steps
    that lagged."""
    meta = json.loads((run_dir / "metadata.json").read_text())
    records = timebase.to_device(read_rank_logs(run_dir), timebase.scale_of(meta))
    steps = metrics.complete_steps(records, meta["world_size"])
    kept = {s: recs for s, recs in steps.items() if not any(r.get("lagged") for r in recs)}
    T = statistics.median(metrics.step_values(recs)["T"] for recs in (kept or steps).values())
    return T, meta, records, 1 - len(kept) / len(steps)


def predict(meta: dict, records: list, overrides: list[str], jitter: float) -> float:
    """T_model of the docstring, device ms: the link model of the point's own config."""
    ranks = meta["ranks"]
    compute = max(r["device_times"]["compute_ms"] for r in ranks)
    opt = max(r["device_times"]["opt_ms"] for r in ranks)
    cfg = config.compose(overrides)
    model = links.of_config(cfg, topology.build(cfg))
    buckets = records[-1]["bucket_bytes"]
    link = sum(model.allreduce_ms(n) + (jitter if model.active else 0.0) for n in buckets)
    return compute + link + opt


def time_scale(common: list[str]) -> float:
    """`hetbench calibrate` once per world size: the D every point of it shares."""
    proc = subprocess.run([HETBENCH, "calibrate", *common], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"calibration failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return float(proc.stdout.strip().rsplit("emulation.time_scale=", 1)[1])


def headroom(world: int) -> float:
    return max(1.25, world / (2 * (os.cpu_count() or 1)))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="world size 4 only, latency 0 and 20")
    ap.add_argument("--keep", type=Path, help="keep the run directories here (default: a temp dir)")
    ap.add_argument("--worlds", default=None, help="comma list of world sizes (default 4,8)")
    ap.add_argument("--latencies", default=None, help="comma list of inter-site latencies in ms "
                                                       "(default 0,5,20; --quick: 0,20)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    common = [f"train.steps={args.steps}", "train.warmup_steps=8", "train.micro_batch=2",
              "train.seq_len=64", *args.overrides]
    worlds = [int(w) for w in args.worlds.split(",")] if args.worlds else ([4] if args.quick else [4, 8])
    latencies = [0.0, 20.0] if args.quick else [0.0, 5.0, 20.0]
    if args.latencies:
        latencies = [float(v) for v in args.latencies.split(",")]
    errors, started = [], time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        print(f"{'W':>2} {'cluster':<9} {'lat(ms)':>7} {'bw(Gb/s)':>8} {'D':>6} {'model(ms)':>9} "
              f"{'meas(ms)':>9} {'err(%)':>7} {'host(%)':>7} {'lagged(%)':>9}", flush=True)
        for world in worlds:
            common_w = [f"emulation.reference_scale={headroom(world)}", *common]
            scale = time_scale([clusters(world)["homog"], "network=rack", *common_w])
            common_w.append(f"emulation.time_scale={scale}")
            for (name, groups), lat, bw in itertools.product(clusters(world).items(), latencies, [1.0, 100.0]):
                point = [groups, "network=rack", f"network.inter_site.latency_ms={lat}",
                         f"network.inter_site.bandwidth_gbps={bw}", *common_w]
                run_dir = run_point(out, point)
                T, meta, records, lagged = measured(run_dir)
                pred = predict(meta, records, point, 0.0)
                errors.append(abs(T - pred) / T * 100)
                share = json.loads((run_dir / "summary.json").read_text())["emulation"]["host_share"]
                print(f"{world:>2} {name:<9} {lat:>7.0f} {bw:>8.0f} {scale:>6.2f} {pred:>9.2f} "
                      f"{T:>9.2f} {errors[-1]:>7.2f} {share * 100:>7.1f} {lagged * 100:>9.0f}",
                      flush=True)
    print(f"{len(errors)} points in {time.monotonic() - started:.0f} s")
    print(f"fidelity_median_err_pct={statistics.median(errors):.2f} max_err_pct={max(errors):.2f}")


if __name__ == "__main__":
    main()

"""How long `hetbench predict` takes for a fleet of 100,000 and 200,000 ranks: the scale preset
(three campuses, 1.3B-parameter workload, 1% per-rank jitter, 220 predicted steps) for each of
its strategies, median of --repeats calls of bench.predict.predict in this process (config
composed once), and the console script's wall time (Python start, imports and compose included).

    python benchmarks/predict_speed.py [--repeats 5]

Last line: predict_100k_ms=<median over strategies> cli_100k_s=<wall>.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import config as config_mod
from bench.predict import predict

HETBENCH = str(Path(sys.executable).parent / "hetbench")


def timed(cfg, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        predict(cfg)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs) * 1000.0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    at_100k = []
    print(f"{'strategy':<14} {'ranks':>8} {'predict (ms, median)':>21}")
    for strategy in ("ddp", "hierarchical", "diloco", "balanced"):
        for world in (100_000, 200_000):
            cfg = config_mod.compose(["experiment=scale", f"strategy={strategy}",
                                      f"predict.world_size={world}"])
            ms = timed(cfg, args.repeats)
            if world == 100_000:
                at_100k.append(ms)
            print(f"{strategy:<14} {world:>8,} {ms:>21.0f}", flush=True)
    started = time.perf_counter()
    subprocess.run([HETBENCH, "predict", "experiment=scale", "predict.world_size=100000", "--json"],
                   check=True, capture_output=True)
    wall = time.perf_counter() - started
    print(f"predict_100k_ms={statistics.median(at_100k):.0f} cli_100k_s={wall:.2f}")


if __name__ == "__main__":
    main()

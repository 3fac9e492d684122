"""The collective model (bench.costs.links: NCCL's tuner model over nodes, NICs and uplinks)
against published measurements, and its speed at scale.

    python benchmarks/network_model.py

Prints, per size, the published 8 x A100 all_reduce_perf curve (stas00/ml-engineering,
network/README.md; one DGX-class node on NVSwitch) against the model: its bus bandwidth, the
error, and the algorithm and protocol NCCL's tuner picks; then NVLS against the ring on one
8 x H200 node (NVIDIA's published figure: NVLS ~1.3x the ring's busbw at large sizes, from
nccl-tests on HGX H200); then how long `hetbench collectives --model` and `hetbench predict` take
at 100,000 ranks (median of 5 runs each, the whole command)."""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.costs import nccl, topology

HETBENCH = str(Path(sys.executable).with_name("hetbench"))

# bytes -> (time us, busbw GB/s), all_reduce_perf -g 8 on 8 x A100 SXM (NVSwitch)
A100 = {32 << 10: (43.83, 1.31), 1 << 20: (101.9, 18.0), 4 << 20: (101.5, 72.3),
        8 << 20: (133.5, 109.9), 64 << 20: (684.6, 171.5), 256 << 20: (2420.6, 194.1),
        1 << 30: (8203.9, 229.0), 16 << 30: (127997, 234.89)}


def one_node(device: str) -> nccl.Comm:
    return topology.Topology(topology.nodes_of([(device, 8, "a", None)]), topology.IDEAL,
                             topology.IDEAL).comm()


def busbw(size: int, time_us: float, ranks: int = 8) -> float:
    return size / time_us / 1e3 * 2 * (ranks - 1) / ranks


def a100_curve() -> None:
    comm = one_node("A100")
    print(f"# 8 x A100 all_reduce, NCCL {nccl.NCCL_VERSION} tuner model vs the published curve")
    print(f"{'size(B)':>12} {'meas(us)':>9} {'model(us)':>9} {'meas busbw':>10} {'model busbw':>11} "
          f"{'error':>7} {'algo':>5} {'proto':>6}")
    errors = {}
    for size, (t_us, bus) in A100.items():
        pick = nccl.choose("all_reduce", comm, size)
        model = busbw(size, pick.time_us)
        errors[size] = model / bus - 1
        print(f"{size:>12} {t_us:>9.1f} {pick.time_us:>9.1f} {bus:>10.2f} {model:>11.2f} "
              f"{100 * errors[size]:>+6.0f}% {pick.algo:>5} {pick.proto:>6}")
    big = [abs(e) for s, e in errors.items() if s >= 1 << 20]
    print(f"a100_busbw_err_pct_ge_1MiB median={100 * statistics.median(big):.0f} "
          f"max={100 * max(big):.0f}; within 20%: "
          f"{sum(e <= 0.20 for e in big)} of {len(big)} sizes")


def nvls_vs_ring() -> None:
    comm = one_node("H200")
    size = 8 << 30
    ring = nccl.algo_time_us("all_reduce", "ring", "Simple", comm, size)
    nvls = nccl.algo_time_us("all_reduce", "nvls", "Simple", comm, size)
    print(f"h200_8gpu_8GiB busbw ring={busbw(size, ring):.0f} nvls={busbw(size, nvls):.0f} GB/s "
          f"nvls/ring={ring / nvls:.2f} (published ~1.3)")


def timed(args: list[str], runs: int = 5) -> float:
    took = []
    for _ in range(runs):
        start = time.monotonic()
        subprocess.run([HETBENCH, *args], check=True, capture_output=True)
        took.append(time.monotonic() - start)
    return statistics.median(took)


def at_scale() -> None:
    model = timed(["collectives", "--model", "experiment=scale", "--world-size", "100000", "--json"])
    predict = timed(["predict", "experiment=scale", "predict.world_size=100000", "--json"])
    print(f"at_100k_ranks_s collectives_model={model:.2f} predict={predict:.2f} "
          "(whole commands, Python start included; median of 5)")


def main() -> None:
    a100_curve()
    nvls_vs_ring()
    at_scale()


if __name__ == "__main__":
    main()

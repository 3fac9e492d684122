"""Delays on the GPU's own stream, for faults and pacing on real GPUs.

A host sleep does not slow a GPU: the host is ahead of the device, and CUDA events (which time
the GPU's work, bench.rank.timing) would not see it. `torch.cuda._sleep(cycles)` queues a kernel that
spins for a number of SM clock cycles, so the delay sits in the stream exactly where a slower
kernel would, and the step's CUDA events include it. Cycles per millisecond depend on the SM
clock, so they are measured at start with CUDA events, after a warm-up that lets the clock rise
(an idle H200 runs at 345 MHz, a busy one near 1,980).
"""
from __future__ import annotations

import statistics


class GpuSleep:
    """`sleep(ms)`: queue `ms` of spinning on the current stream (returns at once)."""

    def __init__(self, cycles_per_ms: float):
        self.cycles_per_ms = cycles_per_ms

    def __call__(self, ms: float) -> None:
        if ms > 0:
            import torch

            torch.cuda._sleep(int(ms * self.cycles_per_ms))


def _time_ms(torch, cycles: int) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.cuda._sleep(cycles)
    end.record()
    end.synchronize()  # sync point: calibration only
    return start.elapsed_time(end)


def calibrate(probe_ms: float = 10.0, repeats: int = 5) -> GpuSleep:
    """Cycles per ms of this GPU's sleep kernel: median of `repeats` probes of ~probe_ms each."""
    import torch

    guess = 1.5e6  # cycles per ms at 1.5 GHz, refined below
    for _ in range(2):  # warm-up probes: the clock ramps, and the guess improves
        guess = int(probe_ms * guess) / _time_ms(torch, int(probe_ms * guess))
    rates = [int(probe_ms * guess) / _time_ms(torch, int(probe_ms * guess)) for _ in range(repeats)]
    return GpuSleep(statistics.median(rates))

"""Compute pacing on real GPUs: a homogeneous fleet paced into a mixed one (H100s behaving like
A100s), for straggler experiments on a real cluster.

Each paced rank's phases are stretched to its configured device's time (the device model,
bench.costs.device_times, at the run's precision) by spin kernels in the GPU's stream
(bench.rank.gpu_sleep), never by host sleeps, which a GPU would not notice. Time is real: D = 1.

At start, the rank times its own forward, backward and optimizer step (calibration passes,
synchronised), and pads each phase by target - measured: after forward; backward's pad split
over the gradient buckets in proportion to their size, queued as each bucket is handed to the
exchange (so the all-reduce of early buckets still overlaps the rest of backward, as on the
slower device); after the optimizer step. A rank whose GPU is slower than its target is not
padded, and the summary's pacing rows show the excess. Not modelled: variation of the real
GPU's own time after calibration (the pad is fixed), which the records show as it is.
"""
from __future__ import annotations

import time

from bench.costs.devices import PhaseTimes
from bench.emulate.base import NoPacing
from bench.emulate.compute import measure_host


class GpuPacer(NoPacing):
    active = True
    timeline = False  # marks are CUDA events (real GPU time), not planned instants

    def __init__(self, device: PhaseTimes, total_numel: int, device_name: str):
        self.device = device  # targets: the configured device's times (ms)
        self.total_numel, self.device_name = total_numel, device_name
        self.time_scale = None  # 1 once calibrated (real time)
        self.host_ms = None  # this GPU's measured (fwd, bwd, opt, rest) ms
        self.needs = None
        self.pads = (0.0, 0.0, 0.0)  # ms queued after forward, over backward, after the optimizer
        self.sleep = None  # bench.rank.gpu_sleep.GpuSleep
        self._pad_ms = 0.0

    def calibrate(self, trainer, passes: int) -> float:
        self.host_ms = measure_host(trainer, passes)
        fwd, bwd, opt, _ = self.host_ms
        self.pads = tuple(max(0.0, target - real) for target, real in
                          ((self.device.fwd_ms, fwd), (self.device.bwd_ms, bwd),
                           (self.device.opt_ms, opt)))
        self.needs = [max(1.0, fwd / self.device.fwd_ms, bwd / self.device.bwd_ms)]
        self.sleep = trainer.gpu_sleep
        self.time_scale = 1.0
        return 1.0

    def _queue(self, ms: float) -> float:
        if self.sleep is not None and ms > 0:
            self.sleep(ms)
            self._pad_ms += ms
        return time.monotonic()

    def start_step(self, step: int, now: float) -> float:
        self._pad_ms = 0.0
        return now

    def pad_forward(self) -> float:
        return self._queue(self.pads[0])

    def after_fault(self, fault_s: float, fwd_end: float) -> float:
        return time.monotonic()

    def pad_bucket(self, bucket_numel: int) -> float:
        return self._queue(self.pads[1] * bucket_numel / self.total_numel)

    def pad_optimizer(self, exchange_end: float) -> float:
        return self._queue(self.pads[2])

    def pad_ms(self) -> float:
        return self._pad_ms

    def set_time_scale(self, scale: float) -> None:
        self.time_scale = scale

    def describe(self) -> dict:
        host = self.host_ms or (None, None, None, None)
        return {"compute": "on", "pacing": "gpu-sleep", "emulated_device": self.device_name,
                "device_times": self.device.as_dict(), "pacing_time_scale": self.time_scale,
                "needed_scale_by_rank": self.needs, "timeline": False,
                "real_fwd_ms": host[0], "real_bwd_ms": host[1], "real_opt_ms": host[2],
                "pad_fwd_ms": self.pads[0], "pad_bwd_ms": self.pads[1], "pad_opt_ms": self.pads[2],
                "sleep_cycles_per_ms": self.sleep and self.sleep.cycles_per_ms}

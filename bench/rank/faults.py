"""Injected trouble (config `faults`), for tests and for users who want to see a sick GPU.

slow:  extra compute of `ms` before backward on steps [start_step, end_step); `ms` is device
       time: an emulated run waits time_scale x ms on this machine; on a real GPU the delay is
       a spin kernel in the GPU's stream (bench.rank.gpu_sleep), so CUDA events see it as they would
       a throttled GPU
crash: the rank raises at start_step
hang:  the rank stops answering at start_step (sleeps until killed or the peers time out)
"""
from __future__ import annotations

import time


class InjectedCrash(RuntimeError):
    pass


class Faults:
    def __init__(self, faults_cfg, rank: int):
        self.mine = [f for f in faults_cfg if f.rank == rank]
        self.time_scale = 1.0  # the run's time dilation D (emulation sets it)
        self.delay = _host_sleep_ms  # a GPU rank puts it in its stream instead (bench.rank.gpu_sleep)

    @staticmethod
    def _active(fault, step: int) -> bool:
        end = fault.end_step if fault.end_step is not None else float("inf")
        return fault.start_step <= step < end

    def before_backward(self, step: int) -> float:
        """Apply this step's faults; returns the injected slow-down in host ms (0 if none)."""
        slow_ms = 0.0
        for fault in self.mine:
            if fault.kind == "crash" and step == fault.start_step:
                raise InjectedCrash(f"injected crash (faults: kind=crash, rank={fault.rank}, "
                                    f"start_step={fault.start_step})")
            if fault.kind == "hang" and step == fault.start_step:
                print(f"[rank {fault.rank}] injected hang at step {step}", flush=True)
                while True:
                    time.sleep(3600)
            if fault.kind == "slow" and self._active(fault, step):
                slow_ms += fault.ms * self.time_scale
        if slow_ms:
            self.delay(slow_ms)  # stands in for extra compute on a sick device
        return slow_ms


def _host_sleep_ms(ms: float) -> None:
    time.sleep(ms / 1000.0)

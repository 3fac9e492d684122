"""Compute pacing: stretch each rank's forward and backward to its emulated device's speed.

The ranks first calibrate a reference forward and backward time on this machine and agree on
it (the slowest rank's median, times `emulation.reference_scale`), so the fastest emulated
device runs at the reference and a device k times slower gets k times the reference. Each phase
is padded up to its *target* (not "sleep (k-1)x whatever this step took"), which keeps results
steady on a noisy, oversubscribed machine. Backward padding happens in the comm hook as buckets
arrive: bucket i is released at t_bwd_start + target_bwd * (share of gradients in buckets 0..i),
so communication of early buckets overlaps the rest of backward, as on the device. A forward that
overran its target (a busy core) moves the backward schedule earlier by the overrun, so that
backward's slack absorbs it and forward + backward still meets its total target; time spent
between the two (an injected slow fault) is not absorbed.
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.distributed as dist


class Pacer:
    active = True

    def __init__(self, slowdown: float, total_numel: int, device_name: str):
        self.slowdown = slowdown  # fastest emulated speed / this rank's speed, >= 1
        self.total_numel = total_numel
        self.device_name = device_name
        self.ref_fwd_s = self.ref_bwd_s = None
        self._numel_seen = 0
        self._overrun_s = 0.0  # at the latest deadline: forward's, then each bucket's
        self._fwd_overrun_s = 0.0

    def set_reference(self, fwd_s: float, bwd_s: float) -> None:
        self.ref_fwd_s, self.ref_bwd_s = fwd_s, bwd_s

    @property
    def target_fwd_s(self) -> float:
        return self.ref_fwd_s * self.slowdown

    @property
    def target_bwd_s(self) -> float:
        return self.ref_bwd_s * self.slowdown

    def start_step(self, step: int) -> None:
        self._numel_seen, self._overrun_s, self._fwd_overrun_s = 0, 0.0, 0.0

    def _pad_until(self, deadline: float) -> float:
        now = time.monotonic()
        self._overrun_s = max(0.0, now - deadline)
        if now >= deadline:
            return 0.0
        time.sleep(deadline - now)
        return deadline - now

    def pad_forward(self, t_fwd_start: float) -> float:
        if self.ref_fwd_s is None:  # not calibrated yet: run at real speed
            return 0.0
        pad = self._pad_until(t_fwd_start + self.target_fwd_s)
        self._fwd_overrun_s = self._overrun_s
        return pad

    def pad_bucket(self, bucket_numel: int, t_bwd_start: float) -> float:
        if self.ref_bwd_s is None:
            return 0.0
        self._numel_seen += bucket_numel
        share = min(1.0, self._numel_seen / self.total_numel)
        origin = t_bwd_start - self._fwd_overrun_s  # backward's slack absorbs forward's overrun
        return self._pad_until(origin + self.target_bwd_s * share)

    def overrun_ms(self) -> float:
        """How far real compute ran past its target this step (0 when pacing held): measured at
        the last deadline, so a forward overrun that backward absorbed does not count."""
        return self._overrun_s * 1000.0

    def describe(self) -> dict:
        return {"compute": "on", "emulated_device": self.device_name, "slowdown": self.slowdown,
                "reference_fwd_ms": _ms(self.ref_fwd_s), "reference_bwd_ms": _ms(self.ref_bwd_s),
                "target_fwd_ms": _ms(self.ref_fwd_s and self.target_fwd_s),
                "target_bwd_ms": _ms(self.ref_bwd_s and self.target_bwd_s)}


def _ms(seconds):
    return None if seconds is None else seconds * 1000.0


def calibrate(pacer: Pacer, trainer, passes: int, scale: float) -> None:
    """Time `passes` forward+backward passes (after one warm-up), take each rank's median and
    agree on the slowest rank's (all-reduce MAX), so that every rank can meet its target."""
    trainer.calibration_pass()  # warm-up: allocator, kernels, first-touch
    samples = [trainer.calibration_pass() for _ in range(passes)]
    mine = torch.tensor([statistics.median(s[0] for s in samples),
                         statistics.median(s[1] for s in samples)], dtype=torch.float64,
                        device=trainer.env.device)
    dist.all_reduce(mine, op=dist.ReduceOp.MAX)
    fwd, bwd = (float(v) * scale for v in mine.tolist())
    pacer.set_reference(fwd, bwd)

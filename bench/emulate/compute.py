"""Compute pacing in dilated time: each rank's forward, backward and optimizer step take
D x their emulated device's time (bench.costs.device_times), D being the run's one time dilation.

Calibration: every rank times a few forward and backward passes, optimizer steps and the rest
of a real step (batch, real all-reduce) on this machine (host time h), compares them with its
device's times d, and the ranks agree on D = reference_scale x max over ranks of needed_scale
(forward's and backward's h / d, and the exchange segment's; at least 1): the smallest factor at which every
rank's host can keep up with D x its device time, with headroom. A fixed
`emulation.time_scale` (a sweep's shared D) skips the agreement but still measures h, so that a
D too small for this machine shows up as overrun.

Each phase is padded up to its *target* D x d (not "sleep (k-1)x whatever this step took"),
which keeps results steady on a noisy, oversubscribed machine. Backward padding happens in the
comm hook as buckets arrive: bucket i is released at the backward origin + target_bwd x (share
of gradients in buckets 0..i), so communication of early buckets overlaps the rest of backward,
as on the device. A forward that overran its target (a busy core) does not move the backward
schedule, so that backward's slack absorbs it; time spent between the two (an injected slow
fault) is not absorbed. The optimizer step is padded to end D x opt after the exchange ended.
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.distributed as dist

from bench.costs.devices import PhaseTimes
from bench.costs.dilation import needed_scale


class Pacer:
    """Pads each phase to its target and says at which *emulated instant* it ended.

    On CPU ranks (`timeline`), the step's marks are those instants, not the clock read after a
    sleep: the emulated step starts where the previous one ended (this machine's lag there, like
    sampling the batch, which a device has prefetched, rides in the forward's slack), forward
    ends at start + D x fwd, bucket i at the backward origin + D x bwd x share, the optimizer at
    the exchange's end + D x opt. A phase whose real work ran past its instant ends when the
    work did (overrun), so a machine that cannot keep up shows, in the step and in
    `overrun_ms`."""

    active = True

    def __init__(self, device: PhaseTimes, total_numel: int, device_name: str, timeline: bool = True):
        self.device = device  # this rank's device times (ms)
        self.total_numel = total_numel
        self.device_name = device_name
        self.timeline = timeline
        self.time_scale = None  # D, set by calibrate(); no padding before
        self.host_ms = None  # this rank's calibrated host (fwd, bwd, opt, rest) medians
        self.needs = None  # every rank's smallest feasible D, from calibration
        self._next_origin = None  # where the next step starts: the last step's emulated end
        self._origin = self._bwd_origin = 0.0
        self._numel_seen, self._pad_s, self._lag_s = 0, 0.0, 0.0
        self._overrun_s = 0.0  # at the latest deadline: forward's, then each bucket's

    def set_time_scale(self, scale: float) -> None:
        self.time_scale = scale

    def _target_s(self, device_ms: float) -> float:
        return device_ms * self.time_scale / 1000.0

    @property
    def target_fwd_s(self) -> float:
        return self._target_s(self.device.fwd_ms)

    @property
    def target_bwd_s(self) -> float:
        return self._target_s(self.device.bwd_ms)

    @property
    def target_opt_s(self) -> float:
        return self._target_s(self.device.opt_ms)

    @property
    def calibrated(self) -> bool:
        return self.time_scale is not None

    def start_step(self, step: int, now: float) -> float:
        """The step's emulated start: where the last step ended (or the start the ranks agreed
        on after a gather). A machine that is late there carries its lag into this step's
        forward: absorbed by its slack, or shown as overrun; never dropped."""
        self._numel_seen, self._pad_s, self._overrun_s, self._lag_s = 0, 0.0, 0.0, 0.0
        last = self._next_origin
        if not (self.timeline and self.calibrated and last is not None):
            self._origin = now
            return now
        if now < last:  # early: wait for the agreed start
            time.sleep(last - now)
        self._origin = last
        return last

    def resync(self, start=None) -> None:
        """After a pause that is no step's (a gather of records): the next step starts at
        `start` (an instant the ranks agreed on), or when it starts."""
        self._next_origin = start

    def _pad_until(self, deadline: float) -> float:
        """Sleep until `deadline`; the emulated instant the phase ended (later if overrun)."""
        now = time.monotonic()
        self._overrun_s = max(0.0, now - deadline)
        if now >= deadline:
            return now
        time.sleep(deadline - now)
        self._pad_s += deadline - now
        return deadline

    def pad_forward(self) -> float:
        if not self.calibrated:  # not calibrated yet: run at real speed
            self._bwd_origin = time.monotonic()
            return self._bwd_origin
        deadline = self._origin + self.target_fwd_s
        end = self._pad_until(deadline)
        self._bwd_origin = deadline  # backward's slack absorbs a forward overrun
        return end

    def after_fault(self, fault_s: float, fwd_end: float) -> float:
        """A slow fault (time between forward and backward) is not absorbed: it moves backward."""
        self._bwd_origin += fault_s
        return fwd_end + fault_s

    def pad_bucket(self, bucket_numel: int) -> float:
        self._numel_seen += bucket_numel
        if not self.calibrated:
            return time.monotonic()
        share = min(1.0, self._numel_seen / self.total_numel)
        return self._pad_until(self._bwd_origin + self.target_bwd_s * share)

    def pad_optimizer(self, exchange_end: float) -> float:
        """Pad the optimizer step to exchange_end + D x opt: the step's emulated end. If this
        machine is past it already, the lag carries into the next step's forward (start_step)
        and shows there if the forward's slack cannot take it; `lag_ms` logs it."""
        if not self.calibrated:
            return time.monotonic()
        deadline = exchange_end + self.target_opt_s
        now = time.monotonic()
        if now < deadline:
            time.sleep(deadline - now)
        self._lag_s = max(0.0, now - deadline)
        self._next_origin = deadline
        return deadline

    def lag_ms(self) -> float:
        """How far behind the emulated timeline this machine was at the step's end (host ms)."""
        return self._lag_s * 1000.0

    def pad_ms(self) -> float:
        return self._pad_s * 1000.0

    def overrun_ms(self) -> float:
        """How far real compute ran past its target this step (0 when pacing held): measured at
        the last deadline, so a forward overrun that backward absorbed does not count."""
        return self._overrun_s * 1000.0

    def describe(self) -> dict:
        scale = self.time_scale
        host = self.host_ms or (None, None, None, None)
        return {"compute": "on", "emulated_device": self.device_name,
                "device_times": self.device.as_dict(), "pacing_time_scale": scale,
                "needed_scale_by_rank": self.needs, "timeline": self.timeline,
                "host_fwd_ms": host[0], "host_bwd_ms": host[1], "host_opt_ms": host[2],
                "host_rest_ms": host[3],
                "target_fwd_host_ms": _ms(scale and self.target_fwd_s),
                "target_bwd_host_ms": _ms(scale and self.target_bwd_s),
                "target_opt_host_ms": _ms(scale and self.target_opt_s)}


def _ms(seconds):
    return None if seconds is None else seconds * 1000.0


def measure_host(trainer, passes: int) -> tuple[float, float, float, float]:
    """This rank's host medians (ms) of forward, backward, optimizer step, and of the rest of a
    real step that no device time pays for (sampling a batch, the real all-reduce of every
    gradient), after one warm-up. Every pass starts after a barrier, so that the ranks compete
    for the cores as they do in a training step, not one by one as they happen to arrive."""
    passes_of = {"compute": trainer.calibration_pass, "opt": trainer.optimizer_pass,
                 "rest": trainer.host_rest_pass}
    samples = {}
    for name, one_pass in passes_of.items():
        one_pass()  # warm-up: allocator, kernels, first-touch, connections
        samples[name] = []
        for _ in range(passes):
            _barrier(trainer.env.device)
            samples[name].append(one_pass())
    fwd = statistics.median(s[0] for s in samples["compute"])
    bwd = statistics.median(s[1] for s in samples["compute"])
    return tuple(v * 1e3 for v in (fwd, bwd, statistics.median(samples["opt"]),
                                   statistics.median(samples["rest"])))


def _barrier(device) -> None:
    """NCCL's barrier needs the rank's GPU named (else it guesses, and warns)."""
    dist.barrier(device_ids=[device.index]) if device.type == "cuda" else dist.barrier()


def gather_needs(trainer, needed: float) -> list[float]:
    """Every rank's needed D (all-gather: every rank must be able to keep up)."""
    mine = torch.tensor([needed], dtype=torch.float64, device=trainer.env.device)
    everyone = [torch.empty_like(mine) for _ in range(trainer.env.world_size)]
    dist.all_gather(everyone, mine)
    return [float(t.item()) for t in everyone]


def calibrate(pacer: Pacer, trainer, passes: int, headroom: float, fixed=None) -> float:
    """D for the run: a fixed one, or headroom x the largest need over ranks (at least 1)."""
    pacer.host_ms = measure_host(trainer, passes)
    pacer.needs = gather_needs(trainer, needed_scale(pacer.host_ms, pacer.device))
    scale = float(fixed) if fixed is not None else max(1.0, max(pacer.needs) * headroom)
    pacer.set_time_scale(scale)
    return scale

"""The time dilation D an emulated run needs: the smallest factor at which a host keeps up with
D x its device's times (bench.emulate.compute paces to it; the driver and a sweep agree on it
from a calibration's host times). Pure: host and device milliseconds in, a factor out."""
from __future__ import annotations

from bench.costs.devices import PhaseTimes


def needed_scale(host_ms: tuple, device: PhaseTimes) -> float:
    """The smallest D at which this host keeps up with D x device time:
      - in forward and backward, each on its own (a bucket handed over late delays the
        exchange of every rank);
      - from the last hand-over to the next forward's end: the un-emulated rest of a step (real
        all-reduce, batch), the optimizer and the next forward must fit in the optimizer's and
        the forward's budget even where the emulated wire takes no time (a fast link), since
        backward's slack comes too late to help. (This also makes the whole step fit.)
    The optimizer needs no term of its own: an optimizer step that ends late carries its lag
    into the next forward (Pacer.start_step), whose slack the second term provides."""
    fwd, bwd, opt, rest = host_ms
    per_phase = max(fwd / device.fwd_ms, bwd / device.bwd_ms)
    exchange = (rest + opt + fwd) / (device.opt_ms + device.fwd_ms)
    return max(per_phase, exchange)


def config_need(rank_times: list[PhaseTimes], host_ms: list) -> float:
    """The smallest D at which every rank meets its device times on this machine, from each
    rank's host (forward, backward, optimizer, rest) ms of a calibration."""
    return max(needed_scale(host, dev) for host, dev in zip(host_ms, rank_times))

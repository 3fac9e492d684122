"""The emulated link window around one blocking collective, in real milliseconds (D = 1).

A group's wire starts when its last rank is ready: every rank all-reduces (MAX) the instant it
was ready, on the clock aligned to rank 0 (bench.rank.dist.measure_clock_offsets), and every rank ends
at that start plus the modelled time of the op over the group (bench.costs.links). The real collective runs
inside the window and is not added to it; a real transfer slower than the model ends late and
the measured time exceeds the model, as it should.

Back-to-back iterations run on an emulated timeline, as collectives queued on a GPU stream do: a
rank is ready for the next one when the previous one completed (its window's end, or the real
transfer's end if that came later), not when this host woke up from its sleep and looped round.
Waking and looping take a loaded laptop a fraction of a millisecond per iteration; it happens
inside the next window and is not charged, while a real transfer that overruns its window is.
The clock starts at the group's first common start and stops at the last iteration's end.

This is bench.emulate.network.DelayedLink.blocking_exchange's mechanism, not its object: that one
agrees on the world group, times an all-reduce route and adds the training run's jitter, while
here a window belongs to one scope's group and to any op. Jitter is not emulated here."""
from __future__ import annotations

import time
from typing import Callable

import torch
import torch.distributed as dist


class Wire:
    def __init__(self, offset_s: float, device: torch.device):
        self.offset_s = offset_s  # this rank's clock offset to rank 0
        self.device = device
        self.ready = self.first_start = 0.0  # local instants on the emulated timeline
        self.late = 0  # windows of this loop that this machine's real work overran

    def begin(self) -> None:
        """Start a new loop: this rank is ready now, and no window has started yet."""
        self.ready, self.first_start, self.late = time.monotonic(), None, 0

    def elapsed_s(self) -> float:
        """From the loop's first common start to its last completion (local clock)."""
        return self.ready - self.first_start

    def window(self, once: Callable[[], None], wire_s: float, group) -> None:
        joined = torch.tensor([self.ready + self.offset_s], dtype=torch.float64,
                              device=self.device)
        # The agreement runs alongside the real collective (both mostly wait on the network),
        # so that the window holds the longer of the two rather than their sum.
        agreed = dist.all_reduce(joined, op=dist.ReduceOp.MAX, group=group, async_op=True)
        once()
        agreed.wait()  # sync point: the last rank's ready instant is known
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # sync point: NCCL returns once queued
        start = float(joined.item()) - self.offset_s  # local clock
        if self.first_start is None:
            self.first_start = start
        done, end = time.monotonic(), start + wire_s
        if end > done:
            time.sleep(end - done)
        else:
            self.late += 1
        self.ready = max(end, done)

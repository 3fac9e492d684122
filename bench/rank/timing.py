"""Per-step clocks. Marks are named instants within one step; `resolve()` turns them into
seconds on this host's monotonic clock (callers add the clock offset to rank 0).

On CPU a mark is the monotonic clock itself. On CUDA a mark records an event on the current
stream, so it times the GPU work queued before it, not the host's enqueue; all events are read
once, after the step's single synchronization, and anchored to the host clock read right after
that synchronization returns (the last event completed then, to within the sync latency).
"""
from __future__ import annotations

import time
from typing import Callable, Optional


class CpuStepClock:
    def __init__(self, now: Callable[[], float] = time.monotonic):
        self._now = now
        self._marks: dict[str, float] = {}

    def mark(self, name: str, at: Optional[float] = None) -> None:
        """Now, or `at` (an instant on this clock that emulation computed)."""
        self._marks[name] = self._now() if at is None else at

    def resolve(self) -> dict[str, float]:
        marks, self._marks = self._marks, {}
        return marks


class CudaStepClock:
    def __init__(self, device, now: Callable[[], float] = time.monotonic):
        import torch

        self._torch, self._device, self._now = torch, device, now
        self._events: dict = {}

    def mark(self, name: str, at: Optional[float] = None) -> None:
        """An event on the current stream; `at` is ignored (a GPU's work is timed, not planned)."""
        event = self._torch.cuda.Event(enable_timing=True)
        event.record()  # on the calling thread's current stream (autograd's, inside the hook)
        self._events[name] = event

    def resolve(self) -> dict[str, float]:
        anchor = self._torch.cuda.Event(enable_timing=True)
        anchor.record()
        self._torch.cuda.synchronize(self._device)  # the one CPU-GPU sync point of the step
        host_now = self._now()
        marks = anchored_times({k: e.elapsed_time(anchor) for k, e in self._events.items()}, host_now)
        self._events = {}
        return marks


def anchored_times(ms_before_anchor: dict[str, float], anchor_s: float) -> dict[str, float]:
    """Event times from their distance to an anchor event (ms) and the anchor's host time (s)."""
    return {name: anchor_s - ms / 1000.0 for name, ms in ms_before_anchor.items()}


def make_clock(device_type: str, device: Optional[object] = None):
    return CudaStepClock(device) if device_type == "cuda" else CpuStepClock()

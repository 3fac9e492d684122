"""The seams between the step loop and emulation: what the loop calls on a Pacer (compute
pacing) and a Link (link delay), as no-ops. The loop always calls one of each; bench.emulate.build
hands it the real ones (compute.Pacer, gpu.GpuPacer, network.DelayedLink) where emulation is on.
A new kind of pacing or link implements these methods; the loop gains no `if`."""
from __future__ import annotations

import time


class NoPacing:
    """Real speed: no padding; every phase ends when its work does."""

    active = False
    timeline = False

    def start_step(self, step: int, now: float) -> float:
        return now

    def resync(self, start=None) -> None: ...

    def pad_forward(self) -> float:
        return time.monotonic()

    def after_fault(self, fault_s: float, fwd_end: float) -> float:
        return time.monotonic()

    def pad_bucket(self, bucket_numel: int) -> float:
        return time.monotonic()

    def pad_optimizer(self, exchange_end: float) -> float:
        return time.monotonic()

    def pad_ms(self) -> float:
        return 0.0

    def lag_ms(self) -> float:
        return 0.0

    def overrun_ms(self) -> float:
        return 0.0

    def describe(self) -> dict:
        return {"compute": "off"}


class NoLink:
    """The machine's own transport only: nothing injected."""

    def start_step(self, step: int) -> None: ...

    def wrap(self, fut, bucket_index: int, nbytes: int, handed_at, route="ring", rounds=1):
        return fut

    def blocking_exchange(self, ready_at, nbytes: int, route: str, transfer) -> float:
        transfer()  # a collective: it returns when the last rank has joined
        return time.monotonic()

    def injected_ms(self) -> float:
        return 0.0

    def released_at(self):
        return None  # no emulated wire: the optimizer starts when backward returns

    def describe(self) -> dict:
        return {"network": "off"}

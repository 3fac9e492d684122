"""Link emulation: a comm-hook wrapper that makes each gradient bucket's all-reduce take what the
configured topology implies (NCCL's tuner model over nodes, NICs and uplinks: bench.costs.links),
stretched by the
run's time dilation D.

A ring all-reduce starts when the *last* rank hands its bucket over. Alongside each bucket's real
all-reduce, the ranks all-reduce (MAX) the instant they handed it over, on the clock aligned to
rank 0, so every rank knows when the emulated transfer starts: at that last hand-over, or when
the previous bucket's transfer frees the wire (the link is serial), whichever is later. It ends
D x formula later, and every rank releases the bucket then, at the same aligned instant. This
machine's own transfer (Gloo on loopback) runs inside that window and is not added to it; a real
transfer slower than the emulated one makes this machine late on the emulated timeline (see
bench.emulate.compute: slack absorbs lag, and what it cannot absorb shows).

On a real GPU (no emulated timeline) the host hands buckets over before the device has computed
them, so there the wire starts when the real transfer completes, queued behind the previous
bucket, as it did before device time existed.

The release waits on a timer thread (off the autograd thread, so backward goes on). Waking that
thread and finishing backward takes this machine a few ms under load; `released_at()` tells the
trainer when the exchange ended on the emulated timeline, so that the step's `synced` mark is
that instant and the optimizer step's slack absorbs the lag.
`injected_ms` logs the emulated wire time, D x formula, summed over the step's buckets.
"""
from __future__ import annotations

import threading
import time

import torch
import torch.distributed as dist

from bench.costs.links import OUTER_BUCKET, Link, LinkModel  # noqa: F401 (re-exported)


class DelayedLink:
    """Wraps each bucket's all-reduce future: completes it when the emulated wire is done."""

    def __init__(self, model: LinkModel, device: torch.device):
        self.model = model
        self._device = device
        # CUDA futures must name their devices so DDP's stream sync works; CPU needs none.
        self._devices = [device] if device.type == "cuda" else None
        self.step = 0
        self.time_scale = 1.0  # D: every delay is D x the formula (emulation sets it)
        self.offset_s = 0.0  # this rank's clock offset to rank 0 (set at start)
        self._injected_ms = 0.0
        self._released = None  # local instant the step's last bucket was released (emulated)
        self._arrived: dict = {}  # bucket index -> (grads, last hand-over, out, wire_s)
        self._next_bucket = 0  # the wire serves buckets in index order, as every rank must
        self._lock = threading.Lock()
        self._wire_free_at = 0.0  # aligned time at which the emulated wire is idle again
        self.kernel_tbf = None  # emulation.network=kernel: {expected_gbps, tbf_on_this_host}

    def start_step(self, step: int) -> None:
        with self._lock:
            self.step, self._injected_ms, self._released = step, 0.0, None
            self._arrived, self._next_bucket = {}, 0

    def injected_ms(self) -> float:
        return self._injected_ms

    def released_at(self):
        """Local instant the step's exchange ended on the emulated timeline: when the wire
        released the last bucket (None before any bucket). A real transfer slower than that
        makes this machine late, which the optimizer's and the next forward's slack absorb or
        the step's lag shows."""
        with self._lock:
            return self._released

    def wrap(self, fut, bucket_index: int, nbytes: int, handed_at, route: str = "ring",
             rounds: int = 1):
        """`handed_at`: the emulated instant this rank handed the bucket over; None on a real
        GPU, whose host-side hand-over precedes the device's, so the wire starts when the real
        transfer completes instead. `route` and `rounds`: how the strategy's collective
        travels (bench.costs.links)."""
        wire_s = self._wire_s(bucket_index, nbytes, route, rounds)
        if handed_at is None:
            return self._after_real(fut, wire_s)
        last = dist.all_reduce(self._instant(handed_at), op=dist.ReduceOp.MAX,
                               async_op=True).get_future()
        out = torch.futures.Future(devices=self._devices)
        both = torch.futures.collect_all([fut, last])
        both.add_done_callback(lambda done: self._arrive(done, bucket_index, out, wire_s))
        return out

    def blocking_exchange(self, ready_at, nbytes: int, route: str, transfer) -> float:
        """An exchange outside backward (an outer sync after the optimizer): every rank is ready
        at `ready_at` (emulated; None on a real GPU), `transfer()` does the real collectives.
        On the timeline the wire starts at the last rank's ready instant and every rank gets the
        same (local) end instant back; on a real GPU the delay follows the real transfer."""
        wire_s = self._wire_s(OUTER_BUCKET, nbytes, route, 1)
        if ready_at is None:
            transfer()
            if self._device.type == "cuda":  # NCCL calls return once queued: wait for the data
                torch.cuda.synchronize(self._device)
            time.sleep(wire_s)
            return time.monotonic()
        last = self._instant(ready_at)
        dist.all_reduce(last, op=dist.ReduceOp.MAX)
        transfer()
        with self._lock:  # the wire is serial: after any bucket still on it
            start = max(float(last.item()), self._wire_free_at)
            self._wire_free_at = start + wire_s
            return self._wire_free_at - self.offset_s

    def _wire_s(self, index: int, nbytes: int, route: str, rounds: int) -> float:
        """D x the route's formula (with the step's jitter) in seconds; logged as injected."""
        ms = self.model.delay_ms(self.step, index, nbytes, route, rounds) * self.time_scale
        self._injected_ms += ms
        return ms / 1000.0

    def _instant(self, local: float) -> torch.Tensor:
        """A local instant on the clock aligned to rank 0, as a tensor to all-reduce."""
        return torch.tensor([local + self.offset_s], dtype=torch.float64, device=self._device)

    def _arrive(self, done, index: int, out, wire_s: float) -> None:
        """A bucket's real transfer and hand-over agreement are done. Collectives may complete
        out of order (Gloo has several worker threads), so buckets are put on the wire in index
        order: every rank then computes the same release instants."""
        try:
            grads, last = (f.value() for f in done.value())
            last_handed = float(last[0].item())  # aligned clock
        except Exception as err:  # the real transfer failed: fail the wrapped future at once
            out.set_exception(err)
            return
        with self._lock:
            self._arrived[index] = (grads, last_handed, out, wire_s)
            releases = []
            while self._next_bucket in self._arrived:
                releases.append(self._on_wire(*self._arrived.pop(self._next_bucket)))
                self._next_bucket += 1
        for out_i, grads_i, release in releases:
            _complete_at(out_i, grads_i, release)

    def _on_wire(self, grads, last_handed: float, out, wire_s: float):
        """Serial wire (caller holds the lock): the transfer starts at the last hand-over or
        when the wire is free, whichever is later; returns (out, grads, local release)."""
        start = max(last_handed, self._wire_free_at)
        self._wire_free_at = start + wire_s
        release = self._wire_free_at - self.offset_s
        self._released = max(self._released or 0.0, release)
        return out, grads, release

    def _after_real(self, fut, wire_s: float):
        out = torch.futures.Future(devices=self._devices)

        def release(done):
            try:
                grads = done.value()
            except Exception as err:  # the real transfer failed: fail the wrapped future at once
                out.set_exception(err)
                return
            with self._lock:  # serial wire: queue behind the previous bucket
                self._wire_free_at = max(time.monotonic(), self._wire_free_at) + wire_s
                release = self._wire_free_at
            _complete_at(out, grads, release)

        fut.add_done_callback(release)
        return out

    def describe(self) -> dict:
        return {"network": "on" if self.model.active else "ideal (exchange on the emulated timeline)",
                "links_in_ring": [vars(link) for link in self.model.links],
                "collective_model": self.model.describe(),
                "inter_site_bandwidth_by": "kernel (tbf)" if self.kernel_tbf else "model",
                **({"kernel_tbf": self.kernel_tbf} if self.kernel_tbf else {}),
                "model": "NCCL tuner model per bucket (bench.costs.nccl) + U(0, 2*jitter); "
                         "site and hierarchical routes: bench.costs.links",
                "link_time_scale": self.time_scale}


def _complete_at(out, value, instant: float) -> None:
    """Complete `out` with `value` at local monotonic `instant`, on a timer thread."""
    timer = threading.Timer(max(0.0, instant - time.monotonic()), out.set_result, args=(value,))
    timer.daemon = True
    timer.start()

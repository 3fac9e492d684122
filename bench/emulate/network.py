"""Link emulation: sites, links, and a comm-hook wrapper that delays each gradient bucket's
all-reduce by what the configured topology implies.

Cost model (alpha-beta, ring all-reduce as Gloo and NCCL's ring use it): W ranks, n bytes.
The ring takes 2(W-1) steps (reduce-scatter, then all-gather), each sending n/W bytes to the
next rank, all ranks in lock-step, so every step lasts as long as the slowest link in the ring:

    t(n) = 2(W-1) * max_links( alpha + (n/W) / beta )

alpha = latency_ms, beta = bandwidth (Gbit/s -> bytes/ms; null = unlimited). The ring
crosses the inter-site link whenever there are two sites, and intra-site links whenever a site
has two ranks. Jitter: each bucket's all-reduce gets an extra delay drawn uniformly from
[0, 2 * jitter_ms] (mean jitter_ms) of the slowest jittery link, from an RNG seeded by
(seed, step, bucket) so every rank draws the same value.

The delay is added after the real transfer completes, on a timer thread (off the autograd
thread, so backward goes on), and the link is serial: a bucket whose real transfer finishes
while the previous bucket's delay is still running queues behind it, as on a real wire.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch


@dataclass(frozen=True)
class Link:
    latency_ms: float
    bandwidth_gbps: Optional[float]
    jitter_ms: float

    def step_ms(self, chunk_bytes: float) -> float:
        """One ring step over this link: alpha + chunk / beta."""
        transfer = 0.0 if not self.bandwidth_gbps else chunk_bytes * 8 / (self.bandwidth_gbps * 1e6)
        return self.latency_ms + transfer

    @property
    def is_ideal(self) -> bool:
        return self.latency_ms == 0 and not self.bandwidth_gbps and self.jitter_ms == 0


def links_in_ring(sites: list[str], intra: Link, inter: Link) -> list[Link]:
    """The kinds of link a ring over these ranks crosses."""
    counts = {s: sites.count(s) for s in set(sites)}
    used = []
    if any(c > 1 for c in counts.values()):
        used.append(intra)
    if len(counts) > 1:
        used.append(inter)
    return used


class LinkModel:
    def __init__(self, sites: list[str], intra: Link, inter: Link, seed: int):
        self.world_size = len(sites)
        self.links = links_in_ring(sites, intra, inter)
        self.seed = seed

    @property
    def active(self) -> bool:
        return any(not link.is_ideal for link in self.links)

    def allreduce_ms(self, nbytes: int) -> float:
        """Deterministic part: 2(W-1) * max_links(alpha + (n/W)/beta)."""
        w = self.world_size
        if w < 2 or not self.links:
            return 0.0
        return 2 * (w - 1) * max(link.step_ms(nbytes / w) for link in self.links)

    def jitter_ms(self, step: int, bucket: int) -> float:
        j = max((link.jitter_ms for link in self.links), default=0.0)
        if j == 0:
            return 0.0
        return float(np.random.default_rng([self.seed, step, bucket]).uniform(0.0, 2.0 * j))

    def delay_ms(self, step: int, bucket: int, nbytes: int) -> float:
        return self.allreduce_ms(nbytes) + self.jitter_ms(step, bucket)


class DelayedLink:
    """Wraps each bucket's all-reduce future: completes it `delay` after the real transfer."""

    def __init__(self, model: LinkModel, device: torch.device):
        self.model = model
        # CUDA futures must name their devices so DDP's stream sync works; CPU needs none.
        self._devices = [device] if device.type == "cuda" else None
        self.step = 0
        self._injected_ms = 0.0
        self._lock = threading.Lock()
        self._link_free_at = 0.0  # monotonic time at which the emulated wire is idle again

    def start_step(self, step: int) -> None:
        self.step, self._injected_ms = step, 0.0

    def injected_ms(self) -> float:
        return self._injected_ms

    def wrap(self, fut, bucket_index: int, nbytes: int):
        delay_s = self.model.delay_ms(self.step, bucket_index, nbytes) / 1000.0
        self._injected_ms += delay_s * 1000.0
        out = torch.futures.Future(devices=self._devices)
        fut.add_done_callback(lambda done: self._release_later(done, out, delay_s))
        return out

    def _release_later(self, done, out, delay_s: float) -> None:
        try:
            value = done.value()
        except Exception as err:  # the real transfer failed: fail the wrapped future at once
            out.set_exception(err)
            return
        with self._lock:  # serial wire: queue behind the previous bucket's delay
            start = max(time.monotonic(), self._link_free_at)
            self._link_free_at = start + delay_s
            wait = self._link_free_at - time.monotonic()
        timer = threading.Timer(max(0.0, wait), out.set_result, args=(value,))
        timer.daemon = True
        timer.start()

    def describe(self) -> dict:
        return {"network": "on", "links_in_ring": [vars(link) for link in self.model.links],
                "model": "ring all-reduce, 2(W-1) * max_links(alpha + (n/W)/beta) + U(0, 2*jitter)"}

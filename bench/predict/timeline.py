"""The emulated step timeline, computed instead of run: the same schedule bench.emulate.compute
(Pacer) and bench.emulate.network (DelayedLink) enforce on real ranks, with classes of ranks in
place of ranks. All in device ms. One step, class c of the fleet:

  start_c                   where the class's previous step ended (its optimizer step), or the
                            instant every rank agreed on (after a window gather or an outer sync)
  hand-over of bucket i     start_c + (fwd_c + bwd_c * share_i) * m, m the rank's noise draw;
                            the wire starts at the slowest rank's hand-over (an order statistic,
                            bench.predict.noise) or when the previous bucket frees it:
                              end_i = max(slowest hand-over_i, end_{i-1}) + wire_i
                            wire_i = the route's formula (bench.costs.links) + the emulator's own
                            jitter draw for (seed, step, bucket)
  synced                    end of the last bucket; every rank releases it at that instant
  end_c                     synced + opt_c; an outer sync (localsgd / diloco) starts at the last
                            rank's optimizer end (or when the wire is free) and ends every rank
                            at that instant + its wire time
  step_ms_c                 end_c - start_c; the step's T = max_c step_ms_c (as measured)

Approximations under noise (none without it): the wire starts at max(E[slowest hand-over],
previous end) where the emulator would take E[max(...)] (Jensen: slightly early when the two are
close); every predicted step is the expected step, so p90/p99 of a noisy fleet are not its tails.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.costs.links import OUTER_BUCKET, ROUTES, LinkModel, inter_site_bytes
from bench.predict.exchange import Exchange, Transfers
from bench.predict.fleet import Fleet
from bench.predict.noise import Noise, expected_max


@dataclass
class Step:
    step: int
    T: float
    step_ms: np.ndarray  # per class
    compute: np.ndarray  # per class, expected (noise included)
    slowest_compute: float  # expected slowest compute over every rank (an order statistic)
    wait: np.ndarray  # per class: slowest hand-over - own hand-over
    transfer: float  # synced - slowest hand-over
    outer: np.ndarray  # per class: the outer sync's share of the step
    injected: float  # wire time of the step (device ms)
    inter_site_bytes: float


class Timeline:
    def __init__(self, fleet: Fleet, exchange: Exchange, links: LinkModel, noise: Noise,
                 align_every: int, handovers: dict | None = None):
        """handovers: a cache of slowest hand-overs to share among timelines of one fleet and
        noise (bench.predict.fast: the strategies of a search hand over alike)."""
        self.fleet, self.exchange, self.links, self.noise = fleet, exchange, links, noise
        self.align_every = align_every  # the run gathers records every log_every steps
        sites = fleet.sites_per_rank()
        # Bytes crossing the inter-site link are linear in the bytes sent: one factor per route.
        self._crossing = {r: inter_site_bytes(r, 1.0, sites) for r in ROUTES}
        # Steps repeat: the same transfers from the same relative starts give the same slowest
        # hand-overs, shifted. Cached, a 200-step prediction costs a few distinct steps.
        self._handovers: dict = {} if handovers is None else handovers
        self._wires: dict = {}
        f = fleet
        self._slowest_compute = expected_max(np.zeros(len(f.count)), f.compute, f.count, noise,
                                             f.compute)

    def run(self, steps: range) -> list[Step]:
        f = self.fleet
        start = np.zeros(len(f.count))
        wire_free = 0.0
        out = []
        for step in steps:
            step_out, start, wire_free = self._step(step, start, wire_free)
            out.append(step_out)
        return out

    def _slowest_handovers(self, start: np.ndarray, tr: Transfers) -> np.ndarray:
        """Expected slowest hand-over of each bucket (absolute, device ms)."""
        first = float(start.min())
        relative = start - first
        key = (relative.tobytes(), tr.share.tobytes())
        if key not in self._handovers:
            f = self.fleet
            self._handovers[key] = np.array([
                expected_max(relative, f.fwd + f.bwd * share, f.count, self.noise, f.compute)
                for share in tr.share])
        return first + self._handovers[key]

    def _wire_times(self, step: int, tr: Transfers) -> list[float]:
        """Each bucket's wire time: the route's formula (cached) + this step's jitter draw,
        the emulator's own (bench.costs.links.LinkModel.delay_ms)."""
        if tr.kind not in self._wires:
            self._wires[tr.kind] = [self.links.route_ms(tr.route, n, tr.rounds) for n in tr.nbytes]
        return [w + self.links.jitter_ms(step, i, tr.route)
                for i, w in enumerate(self._wires[tr.kind])]

    def _step(self, step: int, start: np.ndarray, wire_free: float):
        f, noise = self.fleet, self.noise
        tr: Transfers = self.exchange.transfers(step)
        compute = f.compute
        end = wire_free
        handovers, wires = self._slowest_handovers(start, tr), self._wire_times(step, tr)
        for slowest, wire in zip(handovers, wires):
            end = max(slowest, end) + wire
        slowest = float(handovers[-1])
        injected = float(sum(wires))
        synced = end
        own_ready = start + compute * noise.mean(compute)
        opt_end = synced + f.opt
        crossing = self._crossing[tr.route] * float(tr.nbytes.sum())
        outer = np.zeros_like(opt_end)
        step_end, next_wire_free = opt_end, synced
        if self.exchange.outer_due(step):
            route, nbytes = self.exchange.outer_route, self.exchange.outer_bytes
            wire = self.links.delay_ms(step, OUTER_BUCKET, nbytes, route)
            sync_end = max(float(opt_end.max()), synced) + wire
            outer = sync_end - opt_end
            step_end = np.full_like(opt_end, sync_end)
            next_wire_free = sync_end
            injected += wire
            crossing += self._crossing[self.exchange.outer_route] * self.exchange.outer_bytes
        step_ms = step_end - start
        next_start = step_end
        if (step + 1) % self.align_every == 0:  # the window gather: every rank starts together
            next_start = np.full_like(step_end, float(step_end.max()))
        result = Step(step, float(step_ms.max()), step_ms, compute * noise.mean(compute),
                      self._slowest_compute, slowest - own_ready, synced - slowest, outer, injected, crossing)
        return result, next_start, next_wire_free

"""The measured loop on one rank: for each scope, op and size, warm up, then time the
iterations back to back (each inside its emulated link window when the scope's links are
emulated), and average the per-iteration time over the ranks that took part."""
from __future__ import annotations

import functools
import time

import torch
import torch.distributed as dist

from bench.collectives import ops, scopes, spec, table
from bench.collectives.wire import Wire
from bench.costs import cluster, topology


class Runner:
    def __init__(self, cfg, env, plan: spec.Plan, offset_s: float):
        self.env, self.plan = env, plan
        self.sites = [r["site"] for r in cluster.rank_table(cfg)]
        topo = topology.build(cfg)
        network_on = cfg.emulation.network != "off"
        self.scopes = scopes.build(plan.scopes, topo, env.rank, network_on)
        self.emulated = network_on and scopes.any_emulated(list(self.scopes.values()), topo)
        self.wire = Wire(offset_s, env.device)

    def run(self, report) -> list[dict]:
        """Every row, in scope, op, size order; `report` sees each block as it is measured."""
        rows = []
        for name in self.plan.scopes:
            scope = self.scopes[name]
            if not scope.groups:
                report.skip(name)
                continue
            for op in self.plan.ops:
                report.block(op, scope)
                for size in self.plan.sizes():
                    row = self.measure(scope, op, size)
                    if row is not None:
                        rows.append(row)
                        report.row(row)
                report.done(rows)
        return rows

    def measure(self, scope: scopes.Scope, op: str, size: int) -> dict | None:
        """One row (None where the size gives a rank no element). Every rank calls it."""
        count, nbytes = spec.layout(op, size, scope.ranks)
        if count == 0:
            return None
        warmup, iters = self.plan.iterations(size)
        mine = self._time_mine(scope, op, size, warmup, iters) if scope.takes_part else None
        seconds, late = self._average(mine)
        model_ms = scope.model_ms(op, nbytes) if self.emulated else None
        row = table.make_row(op, scope.name, scope.ranks, size, seconds * 1e6, iters, warmup,
                             model_ms)
        if self.emulated:
            row["late_share"] = late / iters
        return row

    def _time_mine(self, scope, op: str, size: int, warmup: int, iters: int) -> tuple:
        """(seconds per iteration, windows overrun) on this rank, nccl-tests style: warm up,
        start together, run the iterations back to back, stop once the last one is complete."""
        count, nbytes = spec.layout(op, size, len(scope.mine))
        once = ops.runner(op, scope.mine, scope.group, max(1, count), self.env.rank,
                          self.env.device)
        wire_s = scope.my_model_ms(op, nbytes) / 1000.0 if scope.emulate else 0.0
        if wire_s > 0:
            return self._time_emulated(once, wire_s, scope.group, warmup, iters)
        for _ in range(warmup):
            once()
        dist.barrier(group=scope.group)  # sync point: the group starts the clock together
        start = time.monotonic()
        for _ in range(iters):
            once()
        if self.env.device.type == "cuda":
            torch.cuda.synchronize(self.env.device)  # sync point: NCCL calls return once queued
        return (time.monotonic() - start) / iters, 0

    def _time_emulated(self, once, wire_s: float, group, warmup: int, iters: int) -> tuple:
        """The same on the emulated timeline (bench.collectives.wire): the first window's
        agreement starts the group together, so no barrier is needed."""
        step = functools.partial(self.wire.window, once, wire_s, group)
        self.wire.begin()
        for _ in range(warmup):
            step()
        self.wire.begin()
        for _ in range(iters):
            step()
        return self.wire.elapsed_s() / iters, self.wire.late

    def _average(self, mine: tuple | None) -> tuple[float, float]:
        """nccl-tests' -a 1: the mean of the per-rank times over the ranks that took part, and
        the mean number of windows they overran."""
        seconds, late = mine or (0.0, 0)
        sums = torch.tensor([seconds, late, 0.0 if mine is None else 1.0], dtype=torch.float64,
                            device=self.env.device)
        dist.all_reduce(sums)  # sync point: every rank, once per row
        total, late_total, ranks = sums.tolist()
        return (total / ranks, late_total / ranks) if ranks else (float("nan"), 0.0)

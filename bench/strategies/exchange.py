"""What the DDP comm hook does with one gradient bucket, per strategy. Each exchange returns
the future DDP waits on and what the emulated link must charge for it: the route (see
bench.costs.links), the number of dependent all-reduce rounds, and the bytes this rank handed
to the collectives, measured from the tensors that were sent."""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as psgd

from bench.costs import split


class Sent(NamedTuple):
    fut: torch.futures.Future
    route: str  # ring | site | hierarchical
    nbytes: int  # bytes this rank handed to the collectives for this bucket
    rounds: int = 1  # dependent all-reduces (each pays the links' latency)


def _future(tensor: torch.Tensor) -> torch.futures.Future:
    """A future DDP can wait on for this tensor (CUDA futures must name their device)."""
    return torch.futures.Future(devices=[tensor.device] if tensor.is_cuda else None)


def _done(tensor: torch.Tensor) -> torch.futures.Future:
    fut = _future(tensor)
    fut.set_result(tensor)
    return fut


class Ring:
    """DDP as it comes: average the bucket over every rank with one all-reduce."""
    route = "ring"

    def __init__(self, world_size: int, group=None, size: int | None = None):
        self.group, self.size = group, size or world_size

    def __call__(self, bucket) -> Sent:
        tensor = bucket.buffer()
        tensor.div_(self.size)
        fut = dist.all_reduce(tensor, group=self.group, async_op=True).get_future()
        return Sent(fut.then(lambda f: f.value()[0]), self.route,
                    tensor.numel() * tensor.element_size())


class SiteRing(Ring):
    """Average within this rank's site only (local SGD / DiLoCo inner steps)."""
    route = "site"

    def __init__(self, groups):
        super().__init__(groups.site_size, groups.site, groups.site_size)


class Bf16:
    """torch's bf16_compress_hook: the bucket travels as bf16 (2 bytes an element)."""
    route = "ring"

    def __call__(self, bucket) -> Sent:
        numel = bucket.buffer().numel()
        return Sent(default_hooks.bf16_compress_hook(None, bucket), self.route, numel * 2)


class PowerSgd:
    """torch's powerSGD_hook (error feedback, warm start). Compressed buckets take three
    dependent all-reduces (torch 2.x: the uncompressed tensors, then P in that one's callback,
    then Q); before `start_step` the hook runs one plain all-reduce.

    The hook issues its Q all-reduce from P's completion callback. With several buckets in
    flight, ranks could issue one bucket's Q and the next bucket's P in different orders, and
    Gloo pairs collectives by order: a hang. So buckets are chained: each one's hook runs when
    the previous one's exchange is done, on a process group of its own (the link's hand-over
    agreements use the default group). Backward is not held up; the wire is serial anyway.

    Bytes: what the hook will send, from its own compression test on the bucket's tensors
    (`sent_numel`); a test checks it against the hook's own counters (`describe`)."""
    route = "ring"

    def __init__(self, rank: int, start_step: int, world_size: int, workload_ratio: float = 1.0):
        # An emulated workload compresses better than its proxy (bigger matrices, same rank):
        # compressed bytes x this ratio are the workload's share (bench.costs.device_times).
        self.workload_ratio = workload_ratio
        group = dist.new_group(list(range(world_size))) if dist.is_initialized() else None
        self.state = psgd.PowerSGDState(process_group=group, matrix_approximation_rank=rank,
                                        start_powerSGD_iter=max(2, start_step))
        self._tail = None  # the previous bucket's exchange

    def sent_numel(self, bucket) -> tuple[int, bool]:
        """(elements the hook sends for this bucket, whether it compresses)."""
        if self.state.iter < self.state.start_powerSGD_iter:
            return bucket.buffer().numel(), False
        _, sent = powersgd_numel(bucket.gradients(), self.state.matrix_approximation_rank,
                                 self.state.min_compression_rate)
        return sent, True

    def __call__(self, bucket) -> Sent:
        numel, compressed = self.sent_numel(bucket)
        out = _future(bucket.buffer())
        tail, self._tail = self._tail, out

        def run(_=None):
            try:
                psgd.powerSGD_hook(self.state, bucket).add_done_callback(
                    lambda f: _forward(f, out))
            except Exception as err:  # a failed collective fails the bucket, never hangs it
                out.set_exception(err)

        if tail is None or tail.done():
            run()
        else:
            tail.add_done_callback(run)
        nbytes = numel * bucket.buffer().element_size() * (self.workload_ratio if compressed else 1)
        return Sent(out, self.route, nbytes, rounds=3 if compressed else 1)

    def describe(self) -> dict:
        """torch's own count of the elements its hook compressed and sent (this rank)."""
        _, before, after = self.state.compression_stats()
        return {"powersgd_numel_before": before, "powersgd_numel_after": after}


def powersgd_numel(tensors, rank: int, min_compression_rate: float = 2.0) -> tuple[int, int]:
    """(elements, elements powerSGD_hook sends) for these gradients, by the hook's own test:
    each tensor viewed as (shape[0], -1) goes as rank-r factors where that compresses enough."""
    raw = sent = 0
    for t in tensors:
        n, m = t.reshape(t.shape[0], -1).shape
        ok, full, small = psgd._should_compress(n, m, min(n, m, rank), min_compression_rate)
        raw, sent = raw + full, sent + (small if ok else full)
    return raw, sent


def _forward(done, out) -> None:
    try:
        out.set_result(done.value())
    except Exception as err:
        out.set_exception(err)


class Hierarchical:
    """Reduce within the site, all-reduce among site leaders, broadcast within the site."""
    route = "hierarchical"

    def __init__(self, groups, world_size: int):
        self.groups, self.world_size = groups, world_size

    def __call__(self, bucket) -> Sent:
        tensor = bucket.buffer()
        self.groups.hierarchical_sum(tensor)  # blocking: same order of collectives on every rank
        tensor.div_(self.world_size)
        return Sent(_done(tensor), self.route, tensor.numel() * tensor.element_size())


def build(name: str, strategy_cfg, groups, world_size: int, powersgd_ratio: float = 1.0):
    if name in split.OUTER_SYNC:
        return SiteRing(groups)
    if name == "ddp_bf16":
        return Bf16()
    if name == "powersgd":
        return PowerSgd(strategy_cfg.powersgd_rank, strategy_cfg.powersgd_start_step, world_size,
                        powersgd_ratio)
    if name == "hierarchical":
        return Hierarchical(groups, world_size)
    return Ring(world_size)  # ddp, balanced

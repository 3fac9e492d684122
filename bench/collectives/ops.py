"""One iteration of each collective, on buffers allocated once per size (float32, out of
place where the op has an output). A runner is a no-argument callable that returns when the
call returns: on Gloo the data has moved; on NCCL it is queued (the caller synchronizes)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.distributed as dist

# torch renamed the tensor forms; take the newer name where it exists (no deprecation warning).
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
_reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor


def runner(op: str, members: list[int], group, count: int, rank: int,
           device: torch.device) -> Callable[[], None]:
    """`count` is nccl-tests' parameter count (per rank for all_gather and reduce_scatter)."""
    n = len(members)

    def ones(numel: int) -> torch.Tensor:
        return torch.ones(numel, dtype=torch.float32, device=device)

    if op == "all_reduce":
        buf = ones(count)
        return lambda: dist.all_reduce(buf, group=group)
    if op == "all_gather":
        src, out = ones(count), ones(count * n)  # (count,) -> (n * count,)
        return lambda: _all_gather(out, src, group=group)
    if op == "reduce_scatter":
        src, out = ones(count * n), ones(count)  # (n * count,) -> (count,)
        return lambda: _reduce_scatter(out, src, group=group)
    if op == "broadcast":
        buf = ones(count)
        return lambda: dist.broadcast(buf, src=members[0], group=group)
    return _sendrecv(members, group, rank, ones(count), ones(count))


def _sendrecv(members, group, rank, send, recv) -> Callable[[], None]:
    """nccl-tests' sendrecv: every rank sends to the next in the group and receives from the
    previous, at the same time (two ranks: a pair exchanging both ways)."""
    me = members.index(rank)
    nxt, prev = members[(me + 1) % len(members)], members[(me - 1) % len(members)]

    def once() -> None:
        work = [dist.isend(send, nxt, group=group), dist.irecv(recv, prev, group=group)]
        for w in work:
            w.wait()

    return once

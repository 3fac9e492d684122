"""What the benchmark measures, as nccl-tests defines it (pure arithmetic, no torch).

Sizes double from --min-bytes to --max-bytes (nccl-tests' `-f 2`). Elements are float32; a
size's element count is size / 4, and for all-gather and reduce-scatter the size is the whole
gathered (scattered) buffer, each rank holding count / R elements of it (nccl-tests floors these
counts, so the reported size is what was really moved). Sizes too small to give every rank one
element are skipped.

time  = average iteration time in us, averaged over the ranks that took part (nccl-tests `-a 1`)
algbw = size / time (GB/s, 1e9 bytes)
busbw = algbw * factor: all_reduce 2(R-1)/R, all_gather and reduce_scatter (R-1)/R, broadcast
        and sendrecv 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.costs.links import COLLECTIVES

OPS = COLLECTIVES
SCOPES = ("world", "site", "cross")
WORD_BYTES = 4  # float32
DTYPE = "float"  # nccl-tests' name for float32
REDUCING = ("all_reduce", "reduce_scatter")
SHARDED = ("all_gather", "reduce_scatter")  # size is the whole buffer, count is per rank

# Past this size, iterations shrink in proportion to the size (down to --min-iters), so that the
# default sweep to 256 MiB takes minutes on a laptop rather than an hour. --min-iters equal to
# --iters keeps nccl-tests' fixed count at every size.
SCALE_ITERS_FROM = 1 << 20


def bus_factor(op: str, ranks: int) -> float:
    """nccl-tests' busbw / algbw: what each rank's busiest link carries per byte of `size`."""
    if op == "all_reduce":
        return 2.0 * (ranks - 1) / ranks
    if op in SHARDED:
        return (ranks - 1) / ranks
    return 1.0


def layout(op: str, size: int, ranks: int) -> tuple[int, int]:
    """(count, bytes) nccl-tests reports for a nominal size: count is the parameter count
    (per rank for all-gather and reduce-scatter), bytes the buffer really moved (0: skip)."""
    count = size // WORD_BYTES
    if op in SHARDED:
        per_rank = count // ranks
        return per_rank, per_rank * ranks * WORD_BYTES
    return count, count * WORD_BYTES


def redop(op: str) -> str:
    return "sum" if op in REDUCING else "none"


def root(op: str) -> int:
    """Broadcast's root, as a rank of the scope's group (nccl-tests prints -1 when none)."""
    return 0 if op == "broadcast" else -1


def sizes(min_bytes: int, max_bytes: int) -> list[int]:
    out, size = [], min_bytes
    while size <= max_bytes:
        out.append(size)
        size *= 2
    return out


def iterations(size: int, iters: int, warmup: int, min_iters: int) -> tuple[int, int]:
    """(warmup, timed) iterations at this size: nccl-tests' counts up to SCALE_ITERS_FROM, then
    fewer in proportion to the size, never under min_iters timed and one warmup."""
    if size <= SCALE_ITERS_FROM:
        return warmup, iters
    shrink = SCALE_ITERS_FROM / size
    timed = max(min(min_iters, iters), math.ceil(iters * shrink))
    return min(warmup, max(1, math.ceil(warmup * shrink))), timed


def parse_size(text: str) -> int:
    """Bytes from nccl-tests' notation: 8, 1K, 32M, 1G (powers of 1024)."""
    text = str(text).strip().upper().removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit():
        raise ValueError(text)
    return int(digits) * scale


def human_size(nbytes: int) -> str:
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes >= scale and nbytes % scale == 0:
            return f"{nbytes // scale}{unit}"
    return str(nbytes)


@dataclass
class Plan:
    """What to measure; every rank holds the same plan (parsed from the same arguments)."""
    ops: list[str] = field(default_factory=lambda: list(OPS))
    scopes: list[str] = field(default_factory=lambda: list(SCOPES))
    min_bytes: int = 8
    max_bytes: int = 256 << 20
    iters: int = 20
    warmup: int = 5
    min_iters: int = 2

    def sizes(self) -> list[int]:
        return sizes(self.min_bytes, self.max_bytes)

    def iterations(self, size: int) -> tuple[int, int]:
        return iterations(size, self.iters, self.warmup, self.min_iters)

    def describe(self) -> dict:
        return {"ops": self.ops, "scopes": self.scopes, "min_bytes": self.min_bytes,
                "max_bytes": self.max_bytes, "step_factor": 2, "iters": self.iters,
                "warmup": self.warmup, "min_iters": self.min_iters,
                "scale_iters_from_bytes": SCALE_ITERS_FROM, "type": DTYPE,
                "combine": "average over the ranks that took part (nccl-tests -a 1)"}

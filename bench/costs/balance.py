"""Speed-proportional batch split, pure: how many sequences of a fixed global batch each rank
takes so that the slowest rank finishes as early as possible.

Water-filling: start from one sequence per rank, then give each further sequence to the rank
that would finish it soonest (smallest time at its batch + 1). For times that grow with the
batch this minimises the largest rank time (an exchange argument: the greedy never leaves a
sequence on a rank that finishes later than another rank would). Where time is proportional to
the batch it is the speed-proportional split; below a device's launch floor (time flat in the
batch) it fills the flat part first, which a plain "batch x speed" rule would not.
"""
from __future__ import annotations

import heapq
from typing import Callable


def split_batch(total: int, time_of: list[Callable[[int], float]]) -> list[int]:
    """Sequences per rank (each >= 1, summing to `total`); time_of[r](b) = rank r's time at b."""
    ranks = len(time_of)
    if total < ranks:
        raise ValueError(f"a global batch of {total} sequences cannot give {ranks} ranks one each")
    batch = [1] * ranks
    # (time if the rank took one more, its batch then, rank): ties, as on a flat launch floor,
    # go to the rank with the smaller batch, so equal devices share equally.
    heap = [(time_of[r](2), 2, r) for r in range(ranks)]
    heapq.heapify(heap)
    for _ in range(total - ranks):
        _, _, r = heapq.heappop(heap)
        batch[r] += 1
        heapq.heappush(heap, (time_of[r](batch[r] + 1), batch[r] + 1, r))
    return batch

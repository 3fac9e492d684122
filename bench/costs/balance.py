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


def split_groups(per_rank: int, counts: list[int], time_of: list[Callable[[int], float]]
                 ) -> list[tuple[int, int, int]]:
    """split_batch for groups of identical ranks, where a per-rank split of a 100,000-rank fleet
    would be too slow: the global batch is per_rank x sum(counts). Identical ranks have
    identical keys, so split_batch gives a group's ranks their next sequence one after another:
    here the whole group takes it at once. When fewer sequences are left than the soonest group
    has ranks, split_batch gives all of them to that group's ranks: so does this. Returns
    (group, batch, ranks) rows in rank order: one per group, two for the group that took the
    rest."""
    left = per_rank * sum(counts) - sum(counts)
    if left < 0:
        raise ValueError(f"a batch of {per_rank} per rank cannot give every rank one sequence")
    batch = [1] * len(counts)
    heap = [(time_of[g](2), g) for g in range(len(counts))]
    heapq.heapify(heap)
    rows = None
    while left:
        _, g = heapq.heappop(heap)
        if counts[g] > left:  # the rest goes to `left` of this group's ranks
            rows = [(i, batch[i], counts[i]) for i in range(g)]
            rows += [(g, batch[g] + 1, left), (g, batch[g], counts[g] - left)]
            rows += [(i, batch[i], counts[i]) for i in range(g + 1, len(counts))]
            break
        batch[g] += 1
        left -= counts[g]
        heapq.heappush(heap, (time_of[g](batch[g] + 1), g))
    return rows or [(g, batch[g], counts[g]) for g in range(len(counts))]

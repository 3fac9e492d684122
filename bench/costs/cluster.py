"""What the config says of the cluster, read the same way everywhere: world size, each rank's
device and site (numbered group by group, the contract), its group, the model's vocabulary."""
from __future__ import annotations

from bench import hardware


def world_size(cfg) -> int:
    return sum(int(g.count) for g in cfg.cluster.groups)


def rank_table(cfg) -> list[dict]:
    """One entry per rank, numbered group by group: device (catalog key), site."""
    table = []
    for group in cfg.cluster.groups:
        key = hardware.canonical_name(group.device)
        for _ in range(int(group.count)):
            table.append({"rank": len(table), "device": key, "site": str(group.site)})
    return table


def group_of(cfg, rank: int):
    """The cluster group rank `rank` belongs to."""
    first = 0
    for group in cfg.cluster.groups:
        if rank < first + int(group.count):
            return group
        first += int(group.count)
    raise IndexError(rank)


def vocab_size(cfg) -> int:
    """Tokens the model embeds: 256 bytes for text, else the Markov chain's vocabulary."""
    return 256 if cfg.data.kind == "text" else int(cfg.data.vocab_size)

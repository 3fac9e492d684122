"""Who exchanges with whom in each scope, and over which links.

  world  one group of every rank
  site   one group per site (sites with one rank sit out: nothing to exchange); the sites run
         side by side, as the first stage of a hierarchical all-reduce does
  cross  one group of the site leaders (each site's lowest rank), over the inter-site link;
         sendrecv there is the exchange between two ranks on different sites

A group's hops are those of its ring in rank order (bench.costs.links.ring_hops: how many hops
over each kind of link). A row reports the largest group of its scope (its R and hops; with equal
sites, every group). The pure part (groups, hops) is separate from the process groups, so that it
can be tested without torch."""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.costs.links import Link, collective_ms, ring_hops


def scope_groups(scope: str, sites: list[str]) -> list[list[int]]:
    """The groups of global ranks a scope runs its collectives in (only groups of 2 or more)."""
    by_site: dict[str, list[int]] = {}
    for rank, site in enumerate(sites):
        by_site.setdefault(site, []).append(rank)
    if scope == "world":
        groups = [list(range(len(sites)))]
    elif scope == "site":
        groups = list(by_site.values())
    else:  # cross
        groups = [[members[0] for members in by_site.values()]]
    return [g for g in groups if len(g) > 1]


def group_hops(group: list[int], sites: list[str], intra, inter) -> list[tuple]:
    """(link, hops) of the group's ring (ring_hops); any objects stand for the two links."""
    return ring_hops([sites[r] for r in group], intra, inter)


@dataclass
class Scope:
    """One scope as this rank sees it."""
    name: str
    groups: list[list[int]]          # every group of the scope (global ranks)
    mine: list[int]                  # this rank's group ([] = it sits this scope out)
    hops: list[tuple]                # (link, hops) of the row's (largest) group's ring
    my_hops: list[tuple]             # (link, hops) of this rank's group's ring
    emulate: bool                    # inject the alpha-beta delay (links on and not ideal)
    group: object = field(default=None, repr=False)  # this rank's process group (None: world)

    @property
    def ranks(self) -> int:
        """The row's R: the largest group's size."""
        return max((len(g) for g in self.groups), default=0)

    @property
    def links(self) -> list[Link]:
        return [link for link, _ in self.hops]

    @property
    def takes_part(self) -> bool:
        return len(self.mine) > 1

    def model_ms(self, op: str, nbytes: float) -> float:
        """The row's alpha-beta time (the largest group's)."""
        return collective_ms(op, self.ranks, self.hops, nbytes)

    def my_model_ms(self, op: str, nbytes: float) -> float:
        """This rank's group's alpha-beta time: what its emulated window lasts."""
        return collective_ms(op, len(self.mine), self.my_hops, nbytes)


def describe(scope: str, sites: list[str], intra: Link, inter: Link, rank: int,
             emulate: bool) -> Scope:
    """A Scope without process groups (build() adds them)."""
    groups = scope_groups(scope, sites)
    largest = max(groups, key=len) if groups else []
    mine = next((g for g in groups if rank in g), [])
    my_hops = group_hops(mine, sites, intra, inter)
    return Scope(scope, groups, mine, group_hops(largest, sites, intra, inter), my_hops,
                 emulate and any(not link.is_ideal for link, _ in my_hops))


def any_emulated(scopes: list[Scope], sites: list[str], intra: Link, inter: Link) -> bool:
    """Whether any group of these scopes crosses a link that is not ideal (the same answer on
    every rank, unlike Scope.emulate, which is about this rank's group)."""
    return any(not link.is_ideal for scope in scopes for group in scope.groups
               for link, _ in group_hops(group, sites, intra, inter))


def build(scopes: list[str], sites: list[str], intra: Link, inter: Link, rank: int,
          emulate: bool) -> dict[str, Scope]:
    """Every scope with its process groups. torch.distributed.new_group must be called by every
    rank for every group, in the same order: every rank walks all groups of all scopes."""
    import torch.distributed as dist

    out = {}
    for name in scopes:
        scope = describe(name, sites, intra, inter, rank, emulate)
        for members in scope.groups:
            group = None if len(members) == len(sites) else dist.new_group(members)
            if members == scope.mine:
                scope.group = group
        out[name] = scope
    return out

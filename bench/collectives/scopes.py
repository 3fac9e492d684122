"""Who exchanges with whom in each scope, and over which links.

  world  one group of every rank
  site   one group per site (sites with one rank sit out: nothing to exchange); the sites run
         side by side, as the first stage of a hierarchical all-reduce does
  cross  one group of the site leaders (each site's lowest rank), over the inter-site link;
         sendrecv there is the exchange between two ranks on different sites

A group's cost is the one collective model's (bench.costs.links) over the group's own
topology: its ranks' nodes, NICs and uplinks (bench.costs.topology.Topology.subset). A row reports
the largest group of its scope (with equal sites, every group). The pure part (groups, their
topologies) is separate from the process groups, so that it can be tested without torch."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bench.costs.links import Link, collective_ms
from bench.costs.topology import Topology


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


def group_kinds(group: list[int], sites: list[str]) -> dict[str, int]:
    """{link kind: hops} of the group's ring in rank order (for the report): a hop between
    two sites crosses the inter-site link, any other stays in the site."""
    ring = [sites[r] for r in group]
    if len(ring) < 2:
        return {}
    crossings = sum(a != b for a, b in zip(ring, ring[1:] + ring[:1]))
    kinds = Counter({"intra_site": len(ring) - crossings, "inter_site": crossings})
    return {k: n for k, n in kinds.items() if n > 0}


@dataclass
class Scope:
    """One scope as this rank sees it."""
    name: str
    groups: list[list[int]]          # every group of the scope (global ranks)
    mine: list[int]                  # this rank's group ([] = it sits this scope out)
    topo: Topology                   # the row's (largest) group's topology
    my_topo: Topology                # this rank's group's topology
    emulate: bool                    # inject the modelled delay (links on, group not ideal)
    group: object = field(default=None, repr=False)  # this rank's process group (None: world)

    @property
    def ranks(self) -> int:
        """The row's R: the largest group's size."""
        return max((len(g) for g in self.groups), default=0)

    @property
    def links(self) -> list[Link]:
        return self.topo.tiers()

    @property
    def takes_part(self) -> bool:
        return len(self.mine) > 1

    def model_ms(self, op: str, nbytes: float) -> float:
        """The row's modelled time (the largest group's)."""
        return collective_ms(op, self.topo, nbytes)

    def my_model_ms(self, op: str, nbytes: float) -> float:
        """This rank's group's modelled time: what its emulated window lasts."""
        return collective_ms(op, self.my_topo, nbytes) if len(self.mine) > 1 else 0.0


def describe(scope: str, topo: Topology, rank: int, emulate: bool) -> Scope:
    """A Scope without process groups (build() adds them)."""
    groups = scope_groups(scope, topo.sites_per_rank())
    largest = max(groups, key=len) if groups else []
    mine = next((g for g in groups if rank in g), [])
    my_topo = topo.subset(mine)
    costs = len(mine) > 1 and collective_ms("all_reduce", my_topo, 1.0) > 0
    return Scope(scope, groups, mine, topo.subset(largest), my_topo, emulate and costs)


def any_emulated(scopes: list[Scope], topo: Topology) -> bool:
    """Whether any group of these scopes costs anything in the model (the same answer on every
    rank, unlike Scope.emulate, which is about this rank's group)."""
    return any(collective_ms("all_reduce", topo.subset(group), 1.0) > 0
               for scope in scopes for group in scope.groups)


def build(scopes: list[str], topo: Topology, rank: int, emulate: bool) -> dict[str, Scope]:
    """Every scope with its process groups. torch.distributed.new_group must be called by every
    rank for every group, in the same order: every rank walks all groups of all scopes."""
    import torch.distributed as dist

    out = {}
    world = topo.world_size
    for name in scopes:
        scope = describe(name, topo, rank, emulate)
        for members in scope.groups:
            group = None if len(members) == world else dist.new_group(members)
            if members == scope.mine:
                scope.group = group
        out[name] = scope
    return out

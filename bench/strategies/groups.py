"""Process subgroups by site: one group per site and one of the site leaders (each site's
lowest rank). torch.distributed.new_group must be called by every rank for every group, in the
same order, so every rank builds all of them."""
from __future__ import annotations

import torch
import torch.distributed as dist


class SiteGroups:
    def __init__(self, sites: list[str], rank: int):
        order = list(dict.fromkeys(sites))  # sites in rank order
        self.members = {s: [r for r, site in enumerate(sites) if site == s] for s in order}
        self.leaders = [self.members[s][0] for s in order]
        self.my_site = sites[rank]
        self.leader = self.members[self.my_site][0]
        self.is_leader = rank == self.leader
        self.site_size = len(self.members[self.my_site])
        self._site_group = self._leader_group = None
        if dist.is_initialized() and len(order) > 1:
            for s in order:
                group = dist.new_group(self.members[s])
                if s == self.my_site:
                    self._site_group = group
            group = dist.new_group(self.leaders)
            if self.is_leader:
                self._leader_group = group

    @property
    def site(self):
        """This rank's site group (None = the whole world: one site only)."""
        return self._site_group

    def hierarchical_sum(self, tensor: torch.Tensor) -> None:
        """Sum `tensor` over every rank in place: reduce within the site to its leader, all-reduce
        among the leaders, broadcast within the site. Blocking, in the caller's order (every rank
        issues the same collectives on each group in the same order)."""
        if self._site_group is None:  # one site: a plain all-reduce is the whole hierarchy
            dist.all_reduce(tensor)
            return
        dist.reduce(tensor, dst=self.leader, group=self._site_group)
        if self.is_leader:
            dist.all_reduce(tensor, group=self._leader_group)
        dist.broadcast(tensor, src=self.leader, group=self._site_group)

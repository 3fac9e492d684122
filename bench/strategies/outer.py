"""The outer loop of local SGD and DiLoCo: every H inner steps, average across all ranks and
take an outer step.

DiLoCo (Douillard et al. 2023): each replica keeps the parameters of the last sync (theta).
The pseudo-gradient is theta - theta_local, averaged over replicas; an outer optimizer (SGD,
Nesterov momentum 0.9, lr 0.7) steps theta with it, and every replica continues from the new
theta. Local SGD's periodic model averaging is the same step with lr 1 and no momentum:
theta - mean(theta - theta_local) = mean(theta_local). Inner optimizer state stays local.

The average is data-weighted: a site's ranks hold identical copies (their inner steps average
gradients within the site), so summing over every rank and dividing by W weighs each site by its
share of the tokens. It travels the hierarchical route: within the site, among site leaders
over the inter-site link, and back.
"""
from __future__ import annotations

import torch


class OuterSync:
    route = "hierarchical"

    def __init__(self, params: list, every: int, lr: float, momentum: float, groups, world_size: int):
        self.params, self.every, self.groups, self.world_size = params, every, groups, world_size
        self.lr, self.momentum = lr, momentum
        self.anchor = [p.detach().clone() for p in params]  # theta at the last sync
        self.optimizer = torch.optim.SGD(self.anchor, lr=lr, momentum=momentum,
                                         nesterov=momentum > 0)

    @property
    def nbytes(self) -> int:
        """Bytes of one sync's pseudo-gradient (fp32, every parameter)."""
        return sum(a.numel() * a.element_size() for a in self.anchor)

    def due(self, step: int) -> bool:
        return (step + 1) % self.every == 0

    @torch.no_grad()
    def sync(self) -> None:
        """One outer step (blocking collectives on every rank)."""
        pseudo = torch.cat([(a - p).reshape(-1) for a, p in zip(self.anchor, self.params)])
        self.groups.hierarchical_sum(pseudo)
        pseudo.div_(self.world_size)
        offset = 0
        for a in self.anchor:
            a.grad = pseudo[offset:offset + a.numel()].view_as(a).clone()
            offset += a.numel()
        self.optimizer.step()
        for p, a in zip(self.params, self.anchor):
            p.copy_(a)

    def describe(self) -> dict:
        return {"sync_every": self.every, "outer_lr": self.lr, "outer_momentum": self.momentum,
                "outer_route": self.route}

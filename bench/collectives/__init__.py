"""`hetbench collectives`: an nccl-tests-style micro-benchmark of the collectives, by scope (the
whole world, within each site, across sites), with the configured links emulated as in
`hetbench run`, and a fit of each link kind's latency and bandwidth from the measured times
(docs/collectives.md).

Modules: spec (sizes, iterations, nccl-tests' byte counts and bus factors: pure), options (the
command line), scopes (who exchanges with whom, over which links), ops (one iteration of each
collective), wire (the emulated link window), runner (the measured loop), report (rank 0's
table and collectives.json), table (rows and their formatting), fit, plots, worker (the torchrun
entry), driver (the `hetbench collectives` side). torch is imported only by the rank-side
modules (ops, wire, runner, report, worker); the cost formulas live in bench.costs.links."""
from __future__ import annotations


def load_links(path):
    """The (intra_site, inter_site) bench.costs.links.Link pair fitted in a collectives.json:
    what the predictor takes in place of the configured network (bench.collectives.fit)."""
    from bench.collectives.fit import load_links as fitted  # numpy only when asked

    return fitted(path)

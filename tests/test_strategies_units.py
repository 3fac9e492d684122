"""Strategies' pure parts against hand arithmetic: routes of the link model, inter-site bytes,
the balanced split, and the outer step of local SGD and DiLoCo (single process)."""
from __future__ import annotations

import pytest
import torch

from bench import config
from bench.costs import balance, device_times, links, nccl
from bench.costs.links import Link, LinkModel
from bench.strategies.groups import SiteGroups
from bench.strategies.outer import OuterSync

INTRA = Link(0.5, 400.0, 0.0)  # 0.5 ms, 400 Gb/s = 50e6 bytes/ms
INTER = Link(20.0, 100.0, 0.0)  # 20 ms, 100 Gb/s = 12.5e6 bytes/ms
SITES = ["a", "a", "a", "b", "b", "b"]  # W = 6, S = 2, s = 3


def test_hierarchical_route_is_site_then_leaders_then_broadcast():
    n = 60e6
    model = LinkModel.flat(SITES, INTRA, INTER, seed=0)
    topo = model.topo
    site = max(links.collective_ms("all_reduce", t, n) for t in topo.by_site().values())
    leaders = links.collective_ms("all_reduce", topo.leaders(), n)
    broadcast = max(links.collective_ms("broadcast", t, n) for t in topo.by_site().values())
    assert model.route_ms("hierarchical", n) == pytest.approx(site + leaders + broadcast)
    assert model.route_ms("site", n) == pytest.approx(site)
    assert model.route_ms("ring", n) == pytest.approx(links.collective_ms("all_reduce", topo, n))
    # The flat ring's chain crosses the 20 ms uplink more often than the leaders' exchange does.
    assert model.route_ms("ring", 0) > model.route_ms("hierarchical", 0) - 2 * site


def test_rounds_pay_latency_once_each():
    model = LinkModel.flat(SITES, INTRA, INTER, seed=0)
    n = 6e6
    pick = model.choice("ring", n)
    latency_ms = nccl.latency_us("all_reduce", pick.algo, pick.proto, model.topo.comm()) / 1000
    assert model.route_ms("ring", n, rounds=2) - model.route_ms("ring", n) == pytest.approx(latency_ms)


def test_inter_site_bytes_per_crossing():
    n = 1000.0
    assert links.inter_site_bytes("ring", n, SITES) == pytest.approx(2 * 5 / 6 * n)
    assert links.inter_site_bytes("hierarchical", n, SITES) == pytest.approx(2 * 1 / 2 * n)
    assert links.inter_site_bytes("site", n, SITES) == 0.0
    assert links.inter_site_bytes("ring", n, ["a", "a"]) == 0.0


def test_split_is_proportional_to_speed_when_time_is_linear():
    per_seq = [4.0, 2.0, 2.0, 1.0]  # ms per sequence: speeds 1, 2, 2, 4 -> shares 1/9, 2/9, 2/9, 4/9
    fns = [lambda b, c=c: b * c for c in per_seq]
    assert balance.split_batch(36, fns) == [4, 8, 8, 16]
    assert sum(balance.split_batch(37, fns)) == 37


def test_split_fills_a_flat_floor_evenly_and_keeps_one_each():
    flat = [lambda b: 10.0] * 4
    assert balance.split_batch(8, flat) == [2, 2, 2, 2]
    steep = [lambda b: 1000.0 * b, lambda b: b, lambda b: b]
    assert balance.split_batch(10, steep)[0] == 1
    with pytest.raises(ValueError):
        balance.split_batch(2, flat[:3])


def test_balanced_config_keeps_tokens_and_evens_out_device_time():
    cfg = config.compose(["experiment=remedies", "strategy=balanced"])
    batches = device_times.micro_batches(cfg)
    assert sum(batches) == 4 * cfg.train.micro_batch
    even = device_times.rank_times(cfg, [cfg.train.micro_batch] * 4)
    split = device_times.rank_times(cfg)
    worst = lambda ts: max(t.compute_ms + t.opt_ms for t in ts)  # noqa: E731
    assert worst(split) < 0.5 * worst(even)  # the A100 no longer sets the pace
    # The model gives what each rank's own batch costs: the B200 (rank 2) takes the most.
    assert batches[2] == max(batches) and batches[3] == min(batches)


def test_uneven_batches_cut_the_uniform_split_s_sequences():
    from bench.rank.data import Batches, build_language

    cfg = config.compose([])
    lang = build_language(cfg.data, 0)
    uniform = [Batches(lang, 0, r, 4, 8, torch.device("cpu")).batch(3)[0] for r in range(4)]
    split, offset, cut = [2, 7, 6, 1], 0, []
    for r, b in enumerate(split):
        cut.append(Batches(lang, 0, r, b, 8, torch.device("cpu"), offset=offset, uniform=4).batch(3)[0])
        offset += b
    assert torch.equal(torch.cat(cut), torch.cat(uniform))


def test_the_workload_compresses_better_than_its_proxy():
    plain = config.compose(["experiment=none", "strategy=powersgd"])
    assert device_times.powersgd_ratio(plain) == 1.0
    cfg = config.compose(["experiment=remedies", "strategy=powersgd"])
    import torch

    from bench.rank.model import GPT
    from bench.strategies.exchange import powersgd_numel

    def share(*shape):  # torch's own compression test over the real model's parameters
        with torch.device("meta"):
            raw, sent = powersgd_numel(GPT(*shape).parameters(), 4)
        return sent / raw

    tiny, gpt2 = share(256, 16, 4, 4, 128), share(50304, 1024, 12, 4, 768)
    assert gpt2 < tiny < 0.1
    assert device_times.powersgd_ratio(cfg) == pytest.approx(gpt2 / tiny)
    assert not device_times.workload_applies(config.compose(["experiment=remedies",
                                                             "emulation.compute=off"]), "cpu")


class _OneSite:
    """SiteGroups stand-in for one process: the 'sum over ranks' of one rank is itself."""
    def hierarchical_sum(self, tensor):
        pass


def _params(values):
    return [torch.nn.Parameter(torch.tensor(v, dtype=torch.float32)) for v in values]


def test_localsgd_outer_step_is_model_averaging():
    params = _params([[1.0, 2.0]])
    outer = OuterSync(params, every=3, lr=1.0, momentum=0.0, groups=_OneSite(), world_size=1)
    with torch.no_grad():
        params[0].add_(torch.tensor([0.5, -1.0]))
    outer.sync()
    assert params[0].tolist() == pytest.approx([1.5, 1.0])  # lr 1: the average (one replica)
    assert [outer.due(s) for s in range(6)] == [False, False, True, False, False, True]


def test_diloco_outer_step_is_nesterov_sgd_on_the_pseudo_gradient():
    params = _params([[0.0]])
    outer = OuterSync(params, every=1, lr=0.7, momentum=0.9, groups=_OneSite(), world_size=1)
    theta, buf = 0.0, 0.0
    for local_move in (1.0, -0.5, 2.0):
        with torch.no_grad():
            params[0].add_(local_move)
        g = theta - (theta + local_move)  # pseudo-gradient: theta_last - theta_local
        buf = 0.9 * buf + g
        theta -= 0.7 * (g + 0.9 * buf)  # torch SGD, nesterov=True
        outer.sync()
        assert params[0].item() == pytest.approx(theta)
        assert outer.anchor[0].item() == pytest.approx(theta)


def test_site_groups_name_leaders_without_a_process_group():
    groups = SiteGroups(["a", "a", "b", "b", "b"], rank=3)
    assert groups.leaders == [0, 2] and groups.leader == 2 and not groups.is_leader
    assert groups.site_size == 3

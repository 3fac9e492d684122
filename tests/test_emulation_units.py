"""Link model and pacing logic, without processes."""
from __future__ import annotations

import time

import pytest

from bench.emulate.compute import Pacer
from bench.emulate.network import Link, LinkModel, links_in_ring

SAME_RACK = Link(0.0, None, 0.0)
CAMPUS = Link(2.0, 100.0, 0.0)


def test_ring_crosses_intra_links_only_when_a_site_has_two_ranks():
    assert links_in_ring(["a", "b"], SAME_RACK, CAMPUS) == [CAMPUS]
    assert links_in_ring(["a", "a", "b"], SAME_RACK, CAMPUS) == [SAME_RACK, CAMPUS]
    assert links_in_ring(["a", "a"], SAME_RACK, CAMPUS) == [SAME_RACK]


def test_ring_allreduce_cost_by_hand():
    model = LinkModel(["a", "a", "b", "b"], SAME_RACK, CAMPUS, seed=0)
    nbytes = 4_000_000  # 1 MB chunks over 4 ranks; 100 Gb/s = 12.5 MB/ms
    per_step = 2.0 + 1_000_000 * 8 / 100e9 * 1e3  # 2.08 ms
    assert model.allreduce_ms(nbytes) == pytest.approx(6 * per_step)
    assert model.allreduce_ms(nbytes) == pytest.approx(12.48)


def test_the_slowest_link_sets_the_pace():
    slow_intra = Link(5.0, None, 0.0)
    model = LinkModel(["a", "a", "b"], slow_intra, CAMPUS, seed=0)
    assert model.allreduce_ms(3000) == pytest.approx(4 * max(5.0, 2.0 + 1000 * 8 / 100e9 * 1e3))


def test_jitter_is_seeded_bounded_and_averages_to_the_setting():
    model = LinkModel(["a", "b"], SAME_RACK, Link(1.0, None, 2.0), seed=7)
    draws = [model.jitter_ms(step, 0) for step in range(4000)]
    assert draws[:5] == [LinkModel(["a", "b"], SAME_RACK, Link(1.0, None, 2.0), 7).jitter_ms(s, 0)
                         for s in range(5)]
    assert all(0 <= d <= 4.0 for d in draws)
    assert sum(draws) / len(draws) == pytest.approx(2.0, rel=0.05)


def test_ideal_links_inject_nothing():
    assert not LinkModel(["a", "b"], SAME_RACK, SAME_RACK, 0).active
    assert LinkModel(["a"], SAME_RACK, CAMPUS, 0).allreduce_ms(10**6) == 0.0


def test_pacer_pads_forward_to_its_target_and_counts_overruns():
    pacer = Pacer(slowdown=2.0, total_numel=100, device_name="A100-80GB")
    pacer.set_reference(0.010, 0.020)
    pacer.start_step(0)
    start = time.monotonic()
    pad = pacer.pad_forward(start)
    assert time.monotonic() - start == pytest.approx(0.020, abs=0.004)
    assert pad == pytest.approx(0.020, abs=0.004)
    assert pacer.overrun_ms() == 0.0
    assert pacer.pad_forward(time.monotonic() - 0.5) == 0.0  # real compute already took 0.5 s
    assert pacer.overrun_ms() == pytest.approx(480.0, abs=5.0)


def test_backward_slack_absorbs_a_forward_overrun():
    pacer = Pacer(slowdown=1.0, total_numel=100, device_name="H100-SXM")
    pacer.set_reference(0.010, 0.040)
    pacer.start_step(0)
    t_fwd = time.monotonic() - 0.015  # forward really took 15 ms: 5 ms over its 10 ms target
    assert pacer.pad_forward(t_fwd) == 0.0 and pacer.overrun_ms() == pytest.approx(5.0, abs=1.0)
    t_bwd = time.monotonic()
    pacer.pad_bucket(100, t_bwd)  # released 40 - 5 = 35 ms into backward: total 50 ms as targeted
    assert time.monotonic() - t_bwd == pytest.approx(0.035, abs=0.004)
    assert pacer.overrun_ms() == 0.0


def test_pacer_releases_buckets_in_proportion_to_gradients_done():
    pacer = Pacer(slowdown=1.0, total_numel=100, device_name="H100-SXM")
    pacer.set_reference(0.0, 0.040)
    pacer.start_step(0)
    t0 = time.monotonic()
    pacer.pad_bucket(25, t0)
    assert time.monotonic() - t0 == pytest.approx(0.010, abs=0.004)
    pacer.pad_bucket(75, t0)
    assert time.monotonic() - t0 == pytest.approx(0.040, abs=0.004)


def test_cuda_event_times_are_anchored_to_the_host_clock_after_the_sync():
    from bench.timing import anchored_times

    # events 30 ms and 5 ms before the anchor, whose host time is 100.0 s
    times = anchored_times({"fwd": 30.0, "synced": 5.0}, 100.0)
    assert times == {"fwd": pytest.approx(99.97), "synced": pytest.approx(99.995)}

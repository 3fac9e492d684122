"""Link model and pacing logic, without processes."""
from __future__ import annotations

import time

import pytest

from bench.costs.devices import PhaseTimes
from bench.emulate.compute import Pacer, needed_scale
from bench.emulate.network import Link, LinkModel

SAME_RACK = Link(0.0, None, 0.0)
CAMPUS = Link(2.0, 100.0, 0.0)


def test_jitter_is_seeded_bounded_and_averages_to_the_setting():
    model = LinkModel.flat(["a", "b"], SAME_RACK, Link(1.0, None, 2.0), seed=7)
    draws = [model.jitter_ms(step, 0) for step in range(4000)]
    assert draws[:5] == [LinkModel.flat(["a", "b"], SAME_RACK, Link(1.0, None, 2.0), 7).jitter_ms(s, 0)
                         for s in range(5)]
    assert all(0 <= d <= 4.0 for d in draws)
    assert sum(draws) / len(draws) == pytest.approx(2.0, rel=0.05)


def test_ideal_links_inject_nothing():
    assert not LinkModel.flat(["a", "b"], SAME_RACK, SAME_RACK, 0).active
    assert LinkModel.flat(["a"], SAME_RACK, CAMPUS, 0).allreduce_ms(10**6) == 0.0


def _pacer(fwd_ms: float, bwd_ms: float, scale: float, opt_ms: float = 1.0) -> Pacer:
    pacer = Pacer(PhaseTimes(fwd_ms, bwd_ms, opt_ms, "launch-bound", "model"), total_numel=100,
                  device_name="H100-SXM")
    pacer.set_time_scale(scale)
    return pacer


def test_pacer_pads_forward_to_its_target_and_counts_overruns():
    pacer = _pacer(5.0, 10.0, scale=4.0)  # forward target: 4 x 5 ms
    start = time.monotonic()
    assert pacer.start_step(0, start) == start  # no previous step: starts now
    end = pacer.pad_forward()
    assert end == pytest.approx(start + 0.020)  # the emulated instant, exactly
    assert time.monotonic() - start == pytest.approx(0.020, abs=0.004)
    assert pacer.pad_ms() == pytest.approx(20.0, abs=4.0) and pacer.overrun_ms() == 0.0
    pacer.start_step(1, time.monotonic() - 0.5)  # real compute already took 0.5 s
    assert pacer.pad_forward() == pytest.approx(time.monotonic(), abs=0.002)  # ends when work did
    assert pacer.overrun_ms() == pytest.approx(480.0, abs=5.0)


def test_backward_slack_absorbs_a_forward_overrun():
    pacer = _pacer(5.0, 20.0, scale=2.0)  # targets 10 ms and 40 ms
    start = time.monotonic() - 0.015  # forward really took 15 ms: 5 ms over its 10 ms target
    pacer.start_step(0, start)
    assert pacer.pad_forward() > start + 0.010 and pacer.overrun_ms() == pytest.approx(5.0, abs=1.0)
    ready = pacer.pad_bucket(100)  # released 50 ms after the start, as targeted
    assert ready == pytest.approx(start + 0.050)
    assert time.monotonic() - start == pytest.approx(0.050, abs=0.004)
    assert pacer.overrun_ms() == 0.0


def test_a_slow_fault_moves_backward_instead_of_being_absorbed():
    pacer = _pacer(5.0, 20.0, scale=2.0)
    start = time.monotonic()
    pacer.start_step(0, start)
    fwd_end = pacer.pad_forward()
    time.sleep(0.010)  # the fault
    assert pacer.after_fault(0.010, fwd_end) == pytest.approx(start + 0.020)
    assert pacer.pad_bucket(100) == pytest.approx(start + 0.060)


def test_pacer_releases_buckets_in_proportion_to_gradients_done():
    pacer = _pacer(0.0, 10.0, scale=4.0)  # backward target 40 ms
    t0 = time.monotonic()
    pacer.start_step(0, t0)
    pacer.pad_forward()
    pacer.pad_bucket(25)
    assert time.monotonic() - t0 == pytest.approx(0.010, abs=0.004)
    pacer.pad_bucket(75)
    assert time.monotonic() - t0 == pytest.approx(0.040, abs=0.004)


def test_optimizer_ends_d_times_its_device_time_after_the_exchange():
    pacer = _pacer(1.0, 2.0, scale=3.0, opt_ms=5.0)
    t0 = time.monotonic()
    assert pacer.pad_optimizer(t0) == pytest.approx(t0 + 0.015)
    assert time.monotonic() - t0 == pytest.approx(0.015, abs=0.004) and pacer.lag_ms() == 0.0
    late = time.monotonic() - 0.1  # this machine is 85 ms behind the emulated end
    assert pacer.pad_optimizer(late) == pytest.approx(late + 0.015)
    assert pacer.lag_ms() == pytest.approx(85.0, abs=3.0)


def test_the_next_step_starts_where_the_last_ended_so_lag_is_never_dropped():
    pacer = _pacer(10.0, 10.0, scale=2.0, opt_ms=1.0)  # forward budget 20 ms
    end = pacer.pad_optimizer(time.monotonic())
    assert pacer.start_step(1, end + 0.005) == end  # 5 ms late: the forward's slack takes it
    end = pacer.pad_optimizer(time.monotonic())
    time.sleep(0.050)
    assert pacer.start_step(2, time.monotonic()) == end  # 50 ms late: still the timeline's start...
    assert pacer.pad_forward() == pytest.approx(time.monotonic(), abs=0.002)  # ...so it overruns
    assert pacer.overrun_ms() == pytest.approx(30.0, abs=3.0)
    agreed = time.monotonic() + 0.010
    pacer.resync(agreed)  # after a gather: the start the ranks agreed on
    assert pacer.start_step(3, time.monotonic()) == agreed
    assert time.monotonic() == pytest.approx(agreed, abs=0.002)  # waited for it


def test_pacer_does_not_pad_before_calibration():
    pacer = Pacer(PhaseTimes(5.0, 10.0, 1.0, "launch-bound", "model"), 100, "H100-SXM")
    t0 = time.monotonic()
    pacer.start_step(0, t0)
    for instant in (pacer.pad_forward(), pacer.pad_bucket(100), pacer.pad_optimizer(t0)):
        assert instant == pytest.approx(time.monotonic(), abs=0.002)
    assert pacer.pad_ms() == 0.0


def test_needed_scale_is_the_tightest_of_phases_and_exchange():
    device = PhaseTimes(2.0, 4.0, 0.5, "launch-bound", "model")
    assert needed_scale((6.0, 8.0, 1.0, 0.0), device) == pytest.approx(3.0)  # forward: 6 / 2
    # a slow optimizer alone is absorbed by the next forward's slack: only the exchange term
    assert needed_scale((2.0, 4.0, 2.0, 0.0), device) == pytest.approx((2.0 + 2.0) / 2.5)
    # the real all-reduce + optimizer + next forward must fit in optimizer + forward budgets
    assert needed_scale((2.0, 4.0, 0.5, 5.0), device) == pytest.approx(7.5 / 2.5)


def test_cuda_event_times_are_anchored_to_the_host_clock_after_the_sync():
    from bench.rank.timing import anchored_times

    # events 30 ms and 5 ms before the anchor, whose host time is 100.0 s
    times = anchored_times({"fwd": 30.0, "synced": 5.0}, 100.0)
    assert times == {"fwd": pytest.approx(99.97), "synced": pytest.approx(99.995)}

"""bench.results.metrics on records with known numbers, against hand computation."""
from __future__ import annotations

import pytest

from bench.results import metrics


def rec(rank, step, start, ready, synced, fwd, bwd, opt=2.0, injected=0.0, warmup=False):
    data = 1.0
    end = synced + opt / 1000
    return {"step": step, "rank": rank, "warmup": warmup, "t_start_s": start, "t_ready_s": ready,
            "t_synced_s": synced, "t_end_s": end, "data_ms": data, "fwd_ms": fwd, "bwd_ms": bwd,
            "pad_ms": 0.0, "wait_ms": None, "transfer_ms": None, "injected_ms": injected,
            "opt_ms": opt, "step_ms": (end - start) * 1000, "tokens": 100, "loss": 2.0}


def two_rank_step(step, slow_extra_ms, injected):
    """Rank 0 computes 10 ms, rank 1 computes 10 + extra; exchange ends 5 ms after the last ready."""
    r0 = rec(0, step, 0.0, 0.011, 0.016 + slow_extra_ms / 1000, 4.0, 6.0, injected=injected)
    r1 = rec(1, step, 0.0, 0.011 + slow_extra_ms / 1000, 0.016 + slow_extra_ms / 1000, 4.0 + slow_extra_ms,
             6.0, injected=injected)
    return [r0, r1]


def test_attribute_splits_the_exchange_into_wait_and_transfer():
    records = two_rank_step(0, 30.0, 0.0)
    metrics.attribute(records)
    assert records[0]["wait_ms"] == pytest.approx(30.0)
    assert records[0]["transfer_ms"] == pytest.approx(5.0)
    assert records[1]["wait_ms"] == pytest.approx(0.0)
    assert records[1]["transfer_ms"] == pytest.approx(5.0)


def test_step_values_by_hand():
    records = two_rank_step(0, 30.0, 3.0)
    metrics.attribute(records)
    v = metrics.step_values(records)
    # T = slowest rank's step: 1 + 40 + 0 + 5 + 2 = 48 ms (rank 1); compute 10 and 40
    assert v["T"] == pytest.approx(48.0)
    balanced = 2 / (1 / 10 + 1 / 40)  # 16 ms
    assert v["T_bal"] == pytest.approx(48.0 - 40.0 + balanced)
    assert v["T_ideal"] == pytest.approx(48.0 - 40.0 + balanced - 3.0)
    assert v["efficiency"] == pytest.approx((10 + 40) / (2 * 48.0))


def test_link_delay_hidden_behind_backward_is_not_charged():
    """8 ms injected over several buckets, but only 5 ms of exchange after the last rank was
    ready: the step waited 5 ms for the link, not 8 (the rest overlapped backward)."""
    records = two_rank_step(0, 30.0, 8.0)
    metrics.attribute(records)
    v = metrics.step_values(records)
    assert v["exposed"] == pytest.approx(5.0)
    assert v["T_ideal"] == pytest.approx(v["T_bal"] - 5.0)


def test_summary_by_hand():
    records = []
    for step, extra in enumerate([0.0, 30.0, 30.0, 30.0, 60.0]):
        records += two_rank_step(step, extra, 3.0)
    records[0]["warmup"] = records[1]["warmup"] = True  # step 0 excluded
    metrics.attribute(records)
    ranks = [{"rank": 0, "site": "a", "device": "cpu", "speed": 4.0},
             {"rank": 1, "site": "b", "device": "cpu", "speed": 1.0}]
    s = metrics.summarize(records, ranks, threshold=0.75)
    assert s["steps_measured"] == 4
    assert s["step_ms"]["p50"] == pytest.approx(48.0)  # T = 48, 48, 48, 78
    assert s["step_ms"]["mean"] == pytest.approx((48 * 3 + 78) / 4)
    assert s["tokens_per_s"] == pytest.approx(4 * 200 / ((48 * 3 + 78) / 1000))
    r0, r1 = s["ranks"]
    assert r0["compute_ms_p50"] == pytest.approx(10.0) and r1["compute_ms_p50"] == pytest.approx(40.0)
    assert r0["wait_ms_p50"] == pytest.approx(30.0) and r1["wait_ms_p50"] == pytest.approx(0.0)
    assert (r0["expected_score"], r1["expected_score"]) == (1.0, 0.25)
    # rank 1 is 4x slower, exactly as its 4x slower device predicts: not a straggler
    assert r1["relative_score"] == pytest.approx(0.25) and not r1["flagged"] and not r0["flagged"]
    assert (r0["reason"], r1["reason"]) == ("ok", "device")
    assert s["stragglers"] == []
    assert s["slowdown"]["network"] == pytest.approx(48.0 / 45.0)


def test_unknown_speeds_give_null_expected_scores():
    assert metrics.expected_scores([1.0, None]) == [None, None]
    assert metrics.expected_scores([2.0, 1.0]) == [1.0, 0.5]


def test_balanced_ideal_counts_each_rank_s_share_of_the_work():
    """Rank 0 does 300 tokens in 30 ms (10 tokens/ms), rank 1 100 tokens in 20 ms (5 tokens/ms):
    the same 400 tokens at the two speeds take 400 / 15 ms, not 2 / (1/30 + 1/20) = 24 ms."""
    records = two_rank_step(0, 0.0, 0.0)
    records[0].update(fwd_ms=10.0, bwd_ms=20.0, tokens=300)
    records[1].update(fwd_ms=5.0, bwd_ms=15.0, tokens=100)
    metrics.attribute(records)
    v = metrics.step_values(records)
    assert v["T_bal"] == pytest.approx(v["T"] - 30.0 + 400 / 15)


def test_efficiency_overall_weighs_steps_by_their_time():
    """Two steps of 10 ms at efficiency 0.8 and one sync step of 100 ms at 0.08: the median says
    0.8, the share of all time spent computing is (8 + 8 + 8) / 120 = 0.2."""
    ranks = [{"rank": 0, "site": "a", "device": "x", "speed": None}]
    records = []
    for step, (compute, total) in enumerate([(8.0, 10.0), (8.0, 10.0), (8.0, 100.0)]):
        records.append({"step": step, "rank": 0, "warmup": False, "t_start_s": 0.0,
                        "t_ready_s": compute / 1000, "t_synced_s": compute / 1000,
                        "t_end_s": total / 1000, "data_ms": 0.0, "fwd_ms": compute / 2,
                        "bwd_ms": compute / 2, "pad_ms": 0.0, "wait_ms": 0.0, "transfer_ms": 0.0,
                        "injected_ms": 0.0, "opt_ms": 0.0, "step_ms": total, "tokens": 10,
                        "loss": 1.0})
    summary = metrics.summarize(records, ranks)
    assert summary["efficiency"] == pytest.approx(0.8)
    assert summary["efficiency_overall"] == pytest.approx(24.0 / 120.0)

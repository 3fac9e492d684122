"""Straggler scores, last arrivals and the what-if replay against hand computation."""
import numpy as np
import pytest
from analysis_rundir import build_run_dir, make_records

from bench.analysis import report, whatif
from bench.results import metrics, rundir

# Four ranks, constant compute 10, 10, 20, 40 ms; data 1, transfer 5, optimizer 2 ms.
COMPUTE = [10.0, 10.0, 20.0, 40.0]
T = 1 + 40 + 5 + 2                                   # 48 ms
BALANCED = 4 / (1 / 10 + 1 / 10 + 1 / 20 + 1 / 40)  # 14.545... ms
T_IDEAL = T - 40 + BALANCED                          # 22.545... ms


@pytest.fixture
def analysis(tmp_path):
    run = build_run_dir(tmp_path, [COMPUTE] * 14, warmup=4, speeds=[4.0, 4.0, 2.0, 2.0])
    return report.analyse(rundir.load(run))


def test_scores_flags_and_anomalies(analysis):
    rows = analysis["stragglers"]
    assert [r["relative_score"] for r in rows] == pytest.approx([1.0, 1.0, 0.5, 0.25])
    assert [r["expected_score"] for r in rows] == pytest.approx([1.0, 1.0, 0.5, 0.5])
    # rank 2: 0.5 = its expected 0.5 (its device); rank 3: 0.25 < 0.75 x 0.5
    assert [r["flagged"] for r in rows] == [False, False, False, True]
    assert [r["reason"] for r in rows] == ["ok", "ok", "device", "below_expected"]
    # rank 3: 0.25 < 0.8 * 0.5; rank 2: 0.5 is not < 0.8 * 0.5
    assert [r["anomalous"] for r in rows] == [False, False, False, True]


def test_last_arrivals_count_measured_steps_only(analysis):
    rows = analysis["stragglers"]
    assert [r["last_arrivals"] for r in rows] == [0, 0, 0, 10]
    assert rows[3]["last_arrival_share"] == 1.0


def test_whatif_per_rank_slowdowns(analysis):
    per_rank = {r["rank"]: r["slowdown"] for r in analysis["whatif"]["per_rank"]}
    # fixing rank 3: its 40 ms becomes median(10, 10, 20) = 10, the slowest is then 20 ms
    assert per_rank[3] == pytest.approx(T / (1 + 20 + 5 + 2))
    # fixing any other rank leaves the 40 ms rank in place
    assert [per_rank[r] for r in (0, 1, 2)] == pytest.approx([1.0, 1.0, 1.0])
    assert analysis["whatif"]["total"] == pytest.approx(T / T_IDEAL)


def test_whatif_top_k_shares(analysis):
    top = analysis["whatif"]["top_k"]
    gap = T - T_IDEAL
    assert [t["k"] for t in top] == [1, 2, 3, 4]
    assert top[0]["ranks"] == [3]
    assert top[1]["ranks"] == [3, 2]      # tie on slowdown: larger compute first
    assert top[0]["recovered_share"] == pytest.approx((T - 28) / gap)
    # with 3 and 2 fixed every rank computes 10 ms: step 1 + 10 + 5 + 2
    assert [t["recovered_share"] for t in top[1:]] == pytest.approx([(T - 18) / gap] * 3)


def test_total_agrees_with_summary(tmp_path):
    rng = np.random.default_rng(3)
    compute = (rng.uniform(20, 60, size=(30, 3))).tolist()
    run = rundir.load(build_run_dir(tmp_path, compute, warmup=5, injected_ms=1.5))
    analysis = report.analyse(run)
    assert analysis["whatif"]["total"] == pytest.approx(run.summary["slowdown"]["total"], rel=1e-12)
    assert [r["relative_score"] for r in analysis["stragglers"]] == \
        pytest.approx([r["relative_score"] for r in run.summary["ranks"]], rel=1e-12)


def test_replay_of_unmodified_records_reproduces_measured_step():
    rng = np.random.default_rng(7)
    compute = rng.uniform(10, 50, size=(20, 4)).tolist()
    records = make_records(compute, skew_ms=[0.0, 3.0, 0.5, 7.0], transfer_ms=4.0, opt_ms=2.5)
    steps = metrics.complete_steps(records, 4)
    for recs in steps.values():
        arrays = whatif.step_arrays(recs)
        assert whatif.replay(arrays, arrays["c"]) == pytest.approx(arrays["T"], abs=1e-9)
    assert whatif.analyse(steps)["replay_error_ms"] < 1e-9


def test_replay_rest_is_the_optimizer_when_ranks_start_together():
    records = make_records([[10.0, 30.0]] * 3, data_ms=2.0, transfer_ms=4.0, opt_ms=2.5)
    arrays = whatif.step_arrays(metrics.complete_steps(records, 2)[0])
    assert arrays["transfer"] == pytest.approx(4.0)
    assert arrays["rest"] == pytest.approx(2.5)
    # rank 1 fixed: its compute becomes rank 0's 10 ms
    assert whatif.replay(arrays, np.array([10.0, 10.0])) == pytest.approx(2 + 10 + 4 + 2.5)


def test_sequential_fix_uses_the_others_as_they_stand():
    c = np.array([10.0, 30.0, 50.0, 90.0])
    assert whatif.fixed(c, [3]).tolist() == [10.0, 30.0, 50.0, 30.0]
    assert whatif.fixed(c, [3, 2]).tolist() == [10.0, 30.0, 30.0, 30.0]
    assert whatif.fixed(np.array([42.0]), [0]).tolist() == [42.0]

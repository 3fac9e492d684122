"""A busy host and a full disk, in units: lag marking and the new D (bench.emulate.lag), records
converted at their own D, the `host` reason, `degraded`, and readers of a cut-off rank log."""
from __future__ import annotations

import json

import pytest

from bench.emulate import lag
from bench.results import files, metrics, ranklog, timebase
from bench.sweeps import table


def _rec(step, rank, overrun=0.0, lag_ms=0.0, work=(30.0, 60.0, 10.0), **extra):
    fwd, bwd, opt = work
    return {"step": step, "rank": rank, "warmup": False, "fwd_ms": fwd, "bwd_ms": bwd,
            "opt_ms": opt, "overrun_ms": overrun, "lag_ms": lag_ms, **extra}


def test_a_step_lags_when_any_rank_overran_past_the_tolerance():
    """Paced work 100 host ms: 2 ms is the tolerance; 0.5 ms the floor of sleep granularity."""
    window = [_rec(0, 0, overrun=1.9), _rec(0, 1), _rec(1, 0), _rec(1, 1, overrun=2.1)]
    assert lag.mark(window) == {1}
    assert [r["host_lagged"] for r in window] == [False, False, False, True]
    assert [r["lagged"] for r in window] == [False, False, True, True]
    small = [_rec(0, 0, overrun=0.4, work=(1.0, 2.0, 1.0))]  # 10% of 4 ms, under the floor
    assert lag.mark(small) == set()


def test_d_rises_only_when_lag_persists_and_covers_the_median_need_with_headroom():
    # 10 steps, 4 lagged (> 30%): needs 1 + (overrun + lag) / 100 of the worst rank per step
    window = []
    for step in range(10):
        slow = step < 4
        window += [_rec(step, 0, overrun=40.0 if slow else 0.0, lag_ms=10.0 if slow else 0.0),
                   _rec(step, 1, overrun=20.0 if slow else 0.0)]
    assert lag.next_scale(window, 2.0, 1.25) == pytest.approx(2.0 * 1.5 * 1.25)
    three = [r for r in window if r["step"] not in (3,)]  # 3 of 9 lagged: 33% still persists
    assert lag.next_scale(three, 2.0, 1.25) is not None
    two = [r for r in window if r["step"] not in (2, 3)]  # 2 of 8: a spike, not a busy host
    assert lag.next_scale(two, 2.0, 1.25) is None


def test_statistics_leave_lagged_steps_out_unless_kept():
    recs = [dict(_rec(0, 0), lagged=True), dict(_rec(1, 0), lagged=False)]
    assert [r["step"] for r in lag.for_statistics(recs, "exclude")] == [1]
    assert lag.for_statistics(recs, "keep") == recs
    section = lag.section(recs, "exclude", [{"step": 10, "from": 2.0, "to": 3.0}])
    assert section["lagged_steps"] == {"mode": "exclude", "count": 1, "share": 0.5, "steps": [0]}
    assert section["time_scale_changes"][0]["to"] == 3.0


def test_each_record_converts_at_the_d_it_ran_at():
    recs = [{"step": 0, "fwd_ms": 20.0, "time_scale": 2.0}, {"step": 1, "fwd_ms": 30.0, "time_scale": 3.0},
            {"step": 2, "fwd_ms": 40.0}]
    assert [r["fwd_ms"] for r in timebase.to_device(recs, 4.0)] == [10.0, 10.0, 10.0]


def _steps(flags):
    """Two ranks, rank 1 slow in every step; `flags`: rank 1's host_lagged per step."""
    out = {}
    for step, flag in enumerate(flags):
        out[step] = [{"rank": 0, "fwd_ms": 10.0, "bwd_ms": 20.0, "wait_ms": 5.0, "transfer_ms": 1.0,
                      "host_lagged": False, "step_ms": 40.0, "tokens": 1, "opt_ms": 1.0},
                     {"rank": 1, "fwd_ms": 20.0, "bwd_ms": 40.0, "wait_ms": 0.0, "transfer_ms": 1.0,
                      "host_lagged": flag, "step_ms": 40.0, "tokens": 1, "opt_ms": 1.0}]
    return out


def test_a_rank_slow_because_its_host_lagged_says_host_not_straggler():
    ranks = [{"rank": r, "site": "a", "device": "H100-SXM", "emulated_device": "H100-SXM",
              "speed": 1.0, "device_times": None} for r in range(2)]
    rows = metrics.rank_rows(_steps([True] * 3 + [False] * 7), ranks, 0.75, [None, None])
    assert rows[1]["reason"] == "host" and not rows[1]["flagged"]
    rows = metrics.rank_rows(_steps([True] + [False] * 9), ranks, 0.75, [None, None])
    assert rows[1]["reason"] == "below_expected" and rows[1]["flagged"]
    from bench.results.console import flag_text

    assert flag_text({"flagged": False, "reason": "host"}).startswith("host")


def test_degraded_above_the_share_with_the_fix():
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from bench.rank.outputs import degraded_because

    run = SimpleNamespace(cfg=OmegaConf.create({"emulation": {"max_lagged_share": 0.25}}))
    doc = {"emulation": {"lagged_steps": {"share": 0.3}}}
    assert "30% of measured steps lagged" in degraded_because(run, doc)
    assert degraded_because(run, {"emulation": {"lagged_steps": {"share": 0.2}}}) is None
    assert degraded_because(run, {}) is None


def test_a_degraded_sweep_point_is_not_done(tmp_path):
    files.write_json_atomic(tmp_path / "summary.json", {"status": "degraded"})
    assert table.summary_status(tmp_path) == "degraded" and not table.finished_ok(tmp_path)
    files.write_json_atomic(tmp_path / "summary.json", {"status": "ok"})
    assert table.finished_ok(tmp_path)


def _log(tmp_path, text):
    (tmp_path / "ranks").mkdir(exist_ok=True)
    (tmp_path / "ranks" / "rank_00000.jsonl").write_text(text)


def test_a_cut_off_last_record_is_skipped_and_said_once(tmp_path):
    whole = "".join(json.dumps({"step": s}) + "\n" for s in range(3))
    _log(tmp_path, whole + '{"step": 3, "fwd_')
    notes = []
    assert [r["step"] for r in ranklog.read_rank_logs(tmp_path, notes)] == [0, 1, 2]
    assert len(notes) == 1 and "cut off" in notes[0] and "3 complete" in notes[0]


def test_a_bad_record_in_the_middle_names_the_file_and_line(tmp_path):
    _log(tmp_path, '{"step": 0}\n{"step": 1, oops\n{"step": 2}\n')
    with pytest.raises(ranklog.CorruptLog, match="rank_00000.jsonl: line 2"):
        ranklog.read_rank_logs(tmp_path)


def test_the_status_reserve_is_real_space_and_goes_away(tmp_path):
    files.reserve(tmp_path, 64 * 1024)
    path = tmp_path / files.RESERVE_NAME
    assert path.stat().st_size == 64 * 1024 and path.stat().st_blocks * 512 >= 64 * 1024
    files.release(tmp_path)
    files.release(tmp_path)  # twice is fine
    assert not path.exists()

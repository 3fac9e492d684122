"""Straggler flags on a mixed fleet: flagged = slower than the rank's own device should be, not
slower than the fastest GPU. Synthetic records with the device times of a 16-rank mix (fast),
then the same mix as real ranks (slow)."""
from __future__ import annotations

import numpy as np
import pytest
from analysis_rundir import make_records
from conftest import read_json, read_records, run_hetbench

from bench.results import console, metrics

# Device compute ms of GPT-2 124M (32 x 1024 tokens, bf16) from the device model, as the
# emulated 16-rank run measures them: 8 H100, 4 A100, 4 B200 (ranks numbered group by group).
DEVICE_MS = [66.16] * 8 + [139.82] * 4 + [29.08] * 4
DEVICES = ["H100-SXM"] * 8 + ["A100-80GB"] * 4 + ["B200"] * 4


def ranks_of(device_ms=DEVICE_MS) -> list[dict]:
    return [{"rank": r, "site": "a", "device": "x86_64", "emulated_device": DEVICES[r],
             "speed": 1000.0 / ms, "device_times": {"compute_ms": ms}}
            for r, ms in enumerate(device_ms)]


def summary_of(compute_rows, threshold=0.75) -> dict:
    return metrics.summarize(make_records(compute_rows, warmup=2), ranks_of(), threshold)


@pytest.mark.parametrize("score, expected, compute, target, reason", [
    (1.0, 1.0, 10.0, 10.0, "ok"),
    (0.44, 0.44, 66.0, 66.0, "device"),            # slow only because its device is
    (0.30, 0.44, 97.0, 66.0, "below_expected"),     # 0.30 < 0.75 x 0.44 = 0.33
    (0.34, 0.44, 90.0, 66.0, "over_target"),        # score fine, but 90 x 0.75 > 66
    (0.34, 0.44, 85.0, None, "device"),             # no pacing target: the score alone
    (0.70, None, 10.0, None, "below_threshold"),    # no device model: the plain threshold
    (0.80, None, 10.0, None, "ok"),
])
def test_reason_by_hand(score, expected, compute, target, reason):
    assert metrics.straggler_reason(score, expected, compute, target, 0.75) == reason


def test_mixed_fleet_at_device_speed_flags_no_rank():
    """Every rank at its device's speed: scores equal expected scores, none is a straggler,
    though 12 of 16 are under 0.75 x the fastest (the old flag said YES for those 12)."""
    summary = summary_of([DEVICE_MS] * 12)
    rows = summary["ranks"]
    assert [round(r["relative_score"], 2) for r in rows] == \
        [round(r["expected_score"], 2) for r in rows]
    assert sum(r["relative_score"] < 0.75 for r in rows) == 12
    assert summary["stragglers"] == [] and not any(r["flagged"] for r in rows)
    assert [r["reason"] for r in rows] == ["device"] * 12 + ["ok"] * 4
    flags = [line.rstrip().rsplit(None, 1)[-1] for line in console.format_table(summary).splitlines()[2:]]
    assert flags == ["expected"] * 12 + ["-"] * 4  # the B200 rows end with their bound (unknown)


def test_one_sick_h100_is_the_only_straggler():
    """+40 ms on rank 3: score 29.08 / 106.16 = 0.27 < 0.75 x 0.44 (its expected score)."""
    compute = list(DEVICE_MS)
    compute[3] += 40.0
    summary = summary_of([compute] * 12)
    assert summary["stragglers"] == [3]
    assert summary["ranks"][3]["reason"] == "below_expected"
    assert summary["ranks"][3]["target_compute_ms"] == pytest.approx(66.16)
    lines = console.format_table(summary).splitlines()
    assert lines[2 + 3].rstrip().endswith("STRAGGLER")
    assert sum("STRAGGLER" in line for line in lines) == 1


def test_sick_fastest_group_is_caught_by_its_target():
    """All four B200 take +20 ms (49.08 ms): still the fastest, so their scores say 1.00 and
    the others' rise, but 49.08 x 0.75 > 29.08, their device time: over target."""
    compute = DEVICE_MS[:12] + [49.08] * 4
    summary = summary_of([compute] * 6)
    assert summary["stragglers"] == [12, 13, 14, 15]
    assert {r["reason"] for r in summary["ranks"][12:]} == {"over_target"}
    assert all(r["relative_score"] == 1.0 for r in summary["ranks"][12:])


def test_threshold_scales_the_margin():
    compute = list(DEVICE_MS)
    compute[0] += 10.0  # 76.16 ms, 15% over its device
    assert summary_of([compute] * 6, threshold=0.75)["stragglers"] == []
    assert summary_of([compute] * 6, threshold=0.9)["stragglers"] == [0]  # 76.16 x 0.9 > 66.16


# ---------------------------------------------------------------------------------------------
# The same mix as 16 real CPU ranks, one H100 made sick (about 90 s on a 2-core machine).

WORKLOAD = "emulation.workload={n_layer:12,n_embd:768,vocab_size:50304,micro_batch:32,seq_len:1024}"
MIXED16 = ["cluster=mixed16", "network=rack", "train.steps=12", "train.warmup_steps=4",
           "train.log_every=4", "train.micro_batch=1", "train.seq_len=16", "dist.timeout_s=300",
           WORKLOAD]
SICK = 3  # an H100: +40 ms of forward on every step


@pytest.mark.slow
@pytest.mark.heavy  # 16 ranks on 2 cores: ~70 s
def test_mixed16_run_flags_the_sick_h100_alone(tmp_path):
    """Fifteen ranks at their own device's speed (12 of them far below 0.75 x the fastest) are
    not flagged; the H100 slowed by 40 ms is, and only it."""
    for attempt in range(2):  # a second run only where this machine's own load moved a score
        rc, run_dir, output = run_hetbench(tmp_path / f"try{attempt}", *MIXED16,
                                           f"faults=[{{kind:slow,rank:{SICK},start_step:0,ms:40}}]",
                                           timeout=400)
        assert rc == 0, output[-3000:]
        summary = read_json(run_dir / "summary.json")
        moved = [r["rank"] for r in summary["ranks"] if r["rank"] != SICK
                 and abs(r["relative_score"] - r["expected_score"]) > 0.01]
        if not moved:
            break
        # 16 ranks share 2 cores for 8 measured steps: a host hiccup shows as a rank off its
        # device's speed (what the busy-host issue is about). Said here, then tried once more.
        print(f"mixed16: attempt {attempt + 1}: ranks {moved} off their device's speed")
    assert summary["world_size"] == 16 and summary["stragglers"] == [SICK]
    rows = summary["ranks"]
    expected = ["device"] * 12 + ["ok"] * 4
    expected[SICK] = "below_expected"
    assert [r["reason"] for r in rows] == expected
    for r in rows:  # the others at their own device's speed, to two decimals
        if r["rank"] != SICK:
            assert r["relative_score"] == pytest.approx(r["expected_score"], abs=0.01)
    assert [line.split()[0] for line in output.splitlines() if "STRAGGLER" in line] == [str(SICK)]
    assert output.count(" expected\n") == 11
    # the summary's scores from the records, independently of bench.results.metrics
    compute = {}
    for rec in read_records(run_dir):
        if not rec["warmup"]:
            compute.setdefault(rec["rank"], []).append(rec["fwd_ms"] + rec["bwd_ms"])
    p50 = [np.median(compute[r]) for r in range(16)]
    assert [r["relative_score"] for r in rows] == pytest.approx([min(p50) / c for c in p50])

"""A failing rank never hangs the others, and what was measured stays on disk."""
from __future__ import annotations

import time

import pytest
from conftest import read_json, read_records, run_hetbench

pytestmark = pytest.mark.slow

BASE = ["cluster=h100x2", "network=rack", "train.steps=60", "train.warmup_steps=2",
        "train.log_every=5", "dist.timeout_s=15"]


@pytest.mark.parametrize("kind", ["crash", "hang"])
def test_fault_fails_the_run_within_the_timeout_and_keeps_records(kind, out_root):
    started = time.monotonic()
    rc, run_dir, output = run_hetbench(out_root, *BASE, f"faults=[{{kind:{kind},rank:1,start_step:12}}]",
                                       timeout=120)
    elapsed = time.monotonic() - started
    assert rc != 0, output
    assert elapsed < 15 + 45, f"took {elapsed:.0f}s"  # timeout plus start-up and teardown
    meta = read_json(run_dir / "metadata.json")
    assert meta["status"] == "failed"
    assert read_json(run_dir / "summary.json")["status"] == "failed"
    records = read_records(run_dir)
    for rank in (0, 1):
        steps = {r["step"] for r in records if r["rank"] == rank}
        assert set(range(10)) <= steps, f"rank {rank} lost records: {sorted(steps)}"
        assert max(steps) < 13

"""Trust when the host misbehaves, end to end: CPU load started and stopped in the middle of an
emulated run, and a run on a real, tiny filesystem that fills up."""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import FAST, HETBENCH, read_json

from bench.emulate import lag
from bench.results import metrics, ranklog
from bench.results.outroot import run_dirs

pytestmark = pytest.mark.slow

# The case: one A100, one H100, one B200 with a balanced split of a GPT-2-small workload,
# no link delay.
MIX = ["experiment=none", "cluster.groups=[{device:A100,count:1,site:a},{device:H100,count:1,site:a},"
       "{device:B200,count:1,site:a}]", "strategy=balanced", "network=rack",
       "emulation.workload={n_layer:12,n_embd:768,vocab_size:50304,micro_batch:8,seq_len:1024}",
       "train.micro_batch=8", "train.steps=100", "train.warmup_steps=10", "logger=none"]


def _burn(stop_at: float) -> None:
    x = 0
    while time.monotonic() < stop_at:
        x += 1


def run_with_load(out: Path, *overrides: str, load_after_lines: int = 0, load_s: float = 6.0,
                  burners: int = 3) -> tuple[int, Path, str]:
    """`hetbench run`; once rank 0's log holds `load_after_lines` records (0: never), `burners`
    busy processes share the cores for `load_s` seconds, then stop."""
    out.mkdir(parents=True, exist_ok=True)
    before = set(run_dirs(out))
    proc = subprocess.Popen([HETBENCH, "run", f"out_root={out}", *overrides], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    loaded = False
    while load_after_lines and proc.poll() is None and not loaded:
        time.sleep(0.2)
        logs = [p for p in run_dirs(out) if p not in before]
        log = logs[0] / "ranks" / "rank_00000.jsonl" if logs else None
        if log and log.exists() and log.read_text().count("\n") >= load_after_lines:
            workers = [multiprocessing.Process(target=_burn, args=(time.monotonic() + load_s,))
                       for _ in range(burners)]
            for w in workers:
                w.start()
            loaded = True
    output, _ = proc.communicate(timeout=600)
    (run_dir,) = set(run_dirs(out)) - before
    return proc.returncode, run_dir, output


@pytest.fixture(scope="module")
def quiet(tmp_path_factory):
    rc, run_dir, output = run_with_load(tmp_path_factory.mktemp("quiet"), *MIX)
    assert rc == 0, output
    return read_json(run_dir / "summary.json")


def test_a_busy_host_mid_run_is_seen_recovered_from_and_never_a_straggler(quiet, tmp_path):
    rc, run_dir, output = run_with_load(tmp_path, *MIX, load_after_lines=30)
    assert rc == 0, output
    s = read_json(run_dir / "summary.json")
    emu = s["emulation"]
    assert emu["lagged_steps"]["count"] > 0 and emu["lagged_steps"]["mode"] == "exclude", emu
    assert len(emu["time_scale_changes"]) >= 1, emu
    assert "time dilation D" in output
    assert not any(r["flagged"] for r in s["ranks"]), s["ranks"]
    assert s["step_ms"]["p50"] == pytest.approx(quiet["step_ms"]["p50"], rel=0.05)
    assert s["status"] == "ok"
    # every record says the D it ran at; the rise shows in the logs
    scales = {r["time_scale"] for r in ranklog.read_rank_logs(run_dir)}
    assert len(scales) >= 2


@pytest.mark.heavy  # a second busy-host run: ~40 s
def test_kept_lag_without_recovery_degrades_the_run_and_blames_the_host(tmp_path):
    rc, run_dir, output = run_with_load(tmp_path, *MIX, "emulation.lagged_steps=keep",
                                        "emulation.rescale=off", "emulation.max_lagged_share=0.1",
                                        load_after_lines=30, load_s=12.0)
    assert rc == 0, output  # degraded is not a failure: scripts read the status
    s = read_json(run_dir / "summary.json")
    assert s["status"] == "degraded" and "lagged" in s["error"], s.get("error")
    assert read_json(run_dir / "metadata.json")["status"] == "degraded"
    assert s["emulation"]["time_scale_changes"] == []
    assert "run degraded" in output
    records = [r for r in ranklog.read_rank_logs(run_dir) if not r["warmup"]]
    assert any(r.get("host_lagged") for r in records), "the load should have made a host lag"
    for row in s["ranks"]:  # a rank whose host lagged often is never called a straggler
        mine = [r for r in records if r["rank"] == row["rank"]]
        if sum(bool(r.get("host_lagged")) for r in mine) >= 0.2 * len(mine):
            assert not row["flagged"] and row["reason"] in ("host", "ok", "device"), row


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def test_a_disk_that_really_fills_up_leaves_a_failed_run_the_report_reads(tmp_path):
    disk = tmp_path / "small"
    if not _mount_tmpfs(disk, "640k"):
        pytest.skip("needs root to mount a tmpfs (a real small filesystem)")
    try:
        proc = subprocess.run([HETBENCH, "run", f"out_root={disk}", *FAST, "train.steps=4000",
                               "network=rack"], capture_output=True, text=True, timeout=600)
        assert proc.returncode != 0
        (run_dir,) = run_dirs(disk)
        meta = read_json(run_dir / "metadata.json")
        assert meta["status"] == "failed" and meta["error"], meta  # the first rank to hit it, or
        # rank 0 losing a peer that did: either way the directory says failed and why
        assert read_json(run_dir / "summary.json")["status"] == "failed"
        copy = tmp_path / "copy"
        shutil.copytree(run_dir, copy)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
    records = [r for r in ranklog.read_rank_logs(copy, []) if r.get("wait_ms") is not None]
    world = 4
    # the steps the report keeps: complete, measured, and not lagged by this machine (a full
    # suite on 2 cores lags a few; emulation.lagged_steps=exclude)
    complete = metrics.complete_steps(lag.for_statistics(records, "exclude"), world,
                                      measured_only=True)
    report = subprocess.run([HETBENCH, "report", str(copy)], capture_output=True, text=True,
                            timeout=300)
    assert report.returncode == 0, report.stdout + report.stderr
    analysis = json.loads((copy / "analysis.json").read_text())
    assert analysis["steps_measured"] == len(complete) > 0
    assert analysis["status"] == "failed"


def test_report_reads_a_run_whose_processes_are_gone(tmp_path):
    """Killed runs leave `running` in metadata.json and no summary: read as incomplete."""
    proc = subprocess.run([HETBENCH, "run", f"out_root={tmp_path}", *FAST, "network=rack",
                           "train.steps=30", "train.warmup_steps=5"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = run_dirs(tmp_path)
    (run_dir / "summary.json").unlink()
    meta = read_json(run_dir / "metadata.json")
    (run_dir / "metadata.json").write_text(json.dumps({**meta, "status": "running"}))
    with open(next((run_dir / "ranks").glob("rank_*.jsonl")), "a") as f:
        f.write('{"step": 99, "rank": 0, "fwd')  # killed mid-write
    report = subprocess.run([HETBENCH, "report", str(run_dir)], capture_output=True, text=True,
                            timeout=300)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "did not finish" in report.stdout and "cut off" in report.stdout
    assert json.loads((run_dir / "analysis.json").read_text())["status"] == "incomplete"


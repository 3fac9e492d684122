"""Ctrl-C, SIGTERM, kill -9 and a full disk against real `hetbench run` processes: every rank
stops, what was measured stays on disk and readable, and the run directory says how it ended."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import FAST, HETBENCH, read_json

from bench import interrupts
from bench.results.outroot import run_dirs

pytestmark = pytest.mark.slow

LONG = ["cluster=h100x2", "network=rack", "train.steps=100000", "train.warmup_steps=2",
        "train.log_every=5", *FAST]


class Run:
    """`hetbench run` in its own session (a signal to it reaches the driver alone, as a
    terminal's Ctrl-C does), read line by line."""

    def __init__(self, args: list[str], preexec_fn=None):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True, preexec_fn=preexec_fn,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.lines: list[str] = []

    def wait_for(self, text: str, timeout: float = 120, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while sum(text in line for line in self.lines) < count:
            line = self.proc.stdout.readline()
            assert line, f"exited before {text!r}:\n{self.output[-3000:]}"
            self.lines.append(line)
            assert time.monotonic() < deadline, f"no {text!r} in {timeout} s"

    def finish(self, timeout: float) -> int:
        try:
            rest, _ = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:  # never leave a run behind a failed test
                for pid in interrupts.descendants(self.proc.pid) + [self.proc.pid]:
                    os.kill(pid, signal.SIGKILL)
        self.lines.append(rest)
        return self.proc.returncode

    @property
    def output(self) -> str:
        return "".join(self.lines)


def run_dir_of(out_root: Path) -> Path:
    (run_dir,) = run_dirs(out_root)
    return run_dir


def rank_steps(run_dir: Path) -> dict[int, list[int]]:
    """Every line of every rank log parses (json.loads raises on half a line); the header,
    first, names the rank."""
    out = {}
    for path in sorted((run_dir / "ranks").glob("rank_*.jsonl")):
        head, *recs = [json.loads(line) for line in path.read_text().splitlines()]
        assert head["kind"] == "header", head
        out[head["rank"]] = [r["step"] for r in recs]
    return out


def report(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([HETBENCH, "report", str(run_dir)], capture_output=True, text=True,
                          timeout=180)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_every_rank_and_keeps_the_records(out_root, sig):
    run = Run([HETBENCH, "run", f"out_root={out_root}", *LONG])
    run.wait_for("tok/s", count=3)
    sent = time.monotonic()
    run.proc.send_signal(sig)
    rc = run.finish(timeout=30)
    stopped_s = time.monotonic() - sent
    print(f"{sig.name}: stopped in {stopped_s:.2f} s")
    assert rc == 130, run.output[-3000:]
    assert stopped_s < 10, f"took {stopped_s:.1f} s"
    run_dir = run_dir_of(out_root)
    summary, meta = read_json(run_dir / "summary.json"), read_json(run_dir / "metadata.json")
    assert summary["status"] == meta["status"] == "interrupted"
    assert meta["end_time"] is not None and summary["steps_measured"] >= 10
    steps = rank_steps(run_dir)
    assert sorted(steps) == [0, 1]
    for rank, got in steps.items():
        assert got == list(range(len(got))), f"rank {rank}: steps missing"
    assert abs(len(steps[0]) - len(steps[1])) <= 1  # both stopped at the same boundary, or one after
    assert summary["steps_measured"] <= min(len(s) for s in steps.values()) - 2  # minus warmup
    assert "interrupted" in run.output and "Traceback" not in run.output.split("hetbench: SIG")[0]
    made = report(run_dir)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("The run was interrupted")
    assert read_json(run_dir / "analysis.json")["status"] == "interrupted"


def test_second_ctrl_c_kills_at_once(out_root):
    run = Run([HETBENCH, "run", f"out_root={out_root}", *LONG])
    run.wait_for("tok/s", count=2)
    run.proc.send_signal(signal.SIGINT)
    time.sleep(0.05)  # before the ranks can have finished writing
    second = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    rc = run.finish(timeout=30)
    assert rc == 130, run.output[-3000:]
    assert time.monotonic() - second < 3
    assert "killing every rank now" in run.output
    meta = read_json(run_dir_of(out_root) / "metadata.json")
    assert meta["status"] == "interrupted"
    assert read_json(run_dir_of(out_root) / "summary.json")["status"] == "interrupted"


def _worker_pid(driver_pid: int, rank: int) -> int:
    for pid in interrupts.descendants(driver_pid):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"HETBENCH_RUN_ID" in b" ".join(env):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"bench.train" in cmd:
                return pid
    raise AssertionError(f"no rank {rank} below {driver_pid}")


def test_kill_9_of_one_rank_fails_the_run_in_time_and_keeps_the_others(out_root):
    timeout_s = 15
    run = Run([HETBENCH, "run", f"out_root={out_root}", *LONG[:-3], "cluster=h100x4",
               f"dist.timeout_s={timeout_s}", *FAST])
    run.wait_for("tok/s", count=3)
    killed = time.monotonic()
    os.kill(_worker_pid(run.proc.pid, 2), signal.SIGKILL)
    rc = run.finish(timeout=timeout_s + 60)
    ended_s = time.monotonic() - killed
    print(f"kill -9: run ended in {ended_s:.2f} s")
    assert rc == 1, run.output[-3000:]
    assert ended_s < timeout_s + 10
    run_dir = run_dir_of(out_root)
    assert read_json(run_dir / "metadata.json")["status"] == "failed"
    assert read_json(run_dir / "summary.json")["status"] == "failed"
    steps = rank_steps(run_dir)
    for rank in (0, 1, 3):
        assert len(steps[rank]) >= 15 and steps[rank] == list(range(len(steps[rank])))
    made = report(run_dir)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("The run failed")


def _limit_file_size(nbytes: int):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


def test_full_disk_fails_clearly_and_leaves_whole_json(out_root):
    """A file-size limit stands in for a full disk: every write past 48 kB fails (EFBIG, as
    ENOSPC would). The rank logs hit it first; summary.json and metadata.json stay whole."""
    run = Run([HETBENCH, "run", f"out_root={out_root}", *LONG[:1], "network=rack",
               "train.steps=2000", "train.warmup_steps=2", "train.log_every=5",
               "dist.timeout_s=30", *FAST], preexec_fn=_limit_file_size(48_000))
    rc = run.finish(timeout=120)
    run_dir = run_dir_of(out_root)
    assert rc == 1, run.output[-3000:]
    assert f"run directory {run_dir.resolve()}" in run.output and "disk full" in run.output
    assert "set out_root=" in run.output
    summary, meta = read_json(run_dir / "summary.json"), read_json(run_dir / "metadata.json")
    assert summary["status"] == meta["status"] == "failed"
    assert "disk full" in meta["error"]
    assert not list(run_dir.glob(".*.tmp"))  # no temporary left behind
    for path in (run_dir / "ranks").glob("*.jsonl"):
        lines = path.read_text().splitlines()
        assert len(path.read_bytes()) <= 48_000
        for line in lines[:-1]:
            json.loads(line)  # whole lines up to the last one the disk took


@pytest.mark.heavy  # a sweep stopped and rerun: ~30 s
def test_interrupted_sweep_resumes(out_root):
    sweep = [HETBENCH, "run", "-m", f"out_root={out_root}", "sweep_id=sw", *LONG[:2],
             "train.steps=24", "train.warmup_steps=2", "train.log_every=5", "train.seed=0,1",
             "emulation.time_scale=4", *FAST]
    run = Run(sweep)
    run.wait_for("point 2 of 2")
    run.wait_for("tok/s", count=2 + sum("tok/s" in line for line in run.lines))  # point 2's
    run.proc.send_signal(signal.SIGINT)
    assert run.finish(timeout=30) == 130, run.output[-3000:]
    rows = read_json(out_root / "sw" / "sweep.json")["points"]
    assert [r["status"] for r in rows] == ["ok", "interrupted"]
    assert "resume it" in run.output
    again = subprocess.run(sweep, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    rows = read_json(out_root / "sw" / "sweep.json")["points"]
    assert [(r["status"], r["reused"]) for r in rows] == [("ok", True), ("ok", False)]

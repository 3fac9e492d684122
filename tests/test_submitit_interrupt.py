"""A submitit_local sweep stopped mid-way (a signal to the `hetbench run -m` process group, as a
terminal's Ctrl-C sends it, or to the driver alone): no job process outlives the driver,
and the same command with the same sweep_id redoes none of the finished points."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import HETBENCH, read_json

from bench import interrupts

pytest.importorskip("hydra_plugins.hydra_submitit_launcher",
                    reason="hydra-submitit-launcher: pip install 'hetbench[cluster]'")

FAST, SLOW = "000_latency_ms=0", "001_latency_ms=400"


def _sweep_args(out_root: Path) -> list[str]:
    """Both points start at once; the 400 ms link keeps the second one running well after the
    first has finished."""
    return [HETBENCH, "run", "-m", "network.inter_site.latency_ms=0,400",
            "hydra/launcher=submitit_local",
            "cluster.groups=[{device:H100,count:1,site:a},{device:H100,count:1,site:b}]",
            "train.steps=12", "train.warmup_steps=2", "train.log_every=4", "train.micro_batch=2",
            "train.seq_len=32", "emulation.compute=off", "logger=none", "sweep_id=stop",
            f"out_root={out_root}"]


def _status(path: Path) -> str | None:
    try:
        return read_json(path).get("status")
    except (OSError, ValueError):  # not written yet (written atomically: never half a file)
        return None


def _wait_ok(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _status(path) != "ok":
        assert proc.poll() is None, f"the sweep ended before {path} said ok"
        assert time.monotonic() < deadline, f"{path} not ok after {timeout} s"
        time.sleep(0.2)


def _driver_lines(out: str) -> str:
    """The driver's own lines: the jobs' tracebacks, which share its output, bury them."""
    return "\n".join(line for line in out.splitlines()
                     if line.startswith(("hetbench:", "Exception ignored", "Error executing"))) + "\n"


def _processes_of(out_root: Path) -> list[str]:
    """Every live process whose command line names this test's directory (submitit's controllers
    and jobs name their folder under it, torchrun and the ranks their out_root)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmd = cmdline.read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(out_root) in cmd and interrupts._alive(int(cmdline.parent.name)):
            found.append(f"{cmdline.parent.name}: {cmd[:200]}")
    return found


def _files(run_dir: Path) -> dict[str, int]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.rglob("*")
            if p.is_file()}


@pytest.mark.slow
# A terminal's Ctrl-C (the whole group) and a scheduler's SIGTERM to the driver alone (whose
# jobs would otherwise run on unseen); SIGTERM to the group takes the same path as both.
# The resume is the same whichever signal stopped the sweep: it is checked once.
@pytest.mark.parametrize("sig, to_group, resume", [(signal.SIGINT, True, True),
                                                   (signal.SIGTERM, False, False)],
                         ids=["SIGINT-group", "SIGTERM-driver"])
def test_a_stopped_submitit_sweep_resumes_without_redoing_a_finished_point(tmp_path, sig,
                                                                            to_group, resume):
    out_root, sweep_dir = tmp_path / "runs", tmp_path / "runs" / "stop"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(_sweep_args(out_root), cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        # headline.json: the job's last word on its point, after rank 0's summary.json
        _wait_ok(sweep_dir / FAST / "headline.json", proc, timeout=150)
        assert _status(sweep_dir / SLOW / "summary.json") != "ok", "stopped too late to test"
        summary_mtime = (sweep_dir / FAST / "summary.json").stat().st_mtime_ns
        sent = time.monotonic()
        # to the group: a terminal's Ctrl-C; to the driver alone: `kill <pid>`, which the jobs
        # (children in the driver's group) never see
        os.killpg(proc.pid, sig) if to_group else os.kill(proc.pid, sig)
        out, _ = proc.communicate(timeout=60)  # the pipe closes when the last job holding it ends
        stopped_s = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            for pid in interrupts.descendants(proc.pid) + [proc.pid]:
                os.kill(pid, signal.SIGKILL)
    print(f"{sig.name}: sweep and its jobs stopped in {stopped_s:.1f} s")
    assert proc.returncode == interrupts.EXIT_INTERRUPTED, _driver_lines(out) + out[-2000:]
    assert "resume it" in out
    assert _processes_of(out_root) == []  # no orphan job, torchrun or rank
    assert stopped_s < 30
    finished = _files(sweep_dir / FAST)
    assert finished["summary.json"] == summary_mtime
    if not resume:
        return

    again = subprocess.run(_sweep_args(out_root), cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=180)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    rows = read_json(sweep_dir / "sweep.json")["points"]
    assert [(r["point"], r["status"], r["reused"]) for r in rows] == \
        [(FAST, "ok", True), (SLOW, "ok", False)]
    assert _files(sweep_dir / FAST) == finished  # the finished point was not run again
    assert read_json(sweep_dir / SLOW / "summary.json")["status"] == "ok"
    assert json.loads((sweep_dir / SLOW / "headline.json").read_text())["status"] == "ok"

"""The pieces behind interrupts and full disks, without torch: a rank's stop flag, atomic writes
under a failing disk, the driver's status marks, rank 0's packed records."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bench import interrupts
from bench.results import files
from bench.results import status as run_status
from bench.results.records import RecordTable


@pytest.fixture
def sigint_restored():
    saved = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, saved)


def test_first_sigint_is_deferred_to_the_step_boundary(sigint_restored):
    stop = interrupts.RankStop().install()
    stop.deferred = True
    stop.check()  # nothing yet
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.01)  # the handler runs between bytecodes: it only sets the flag
    assert stop.requested
    with pytest.raises(interrupts.Interrupted, match="SIGINT"):
        stop.check()
    os.kill(os.getpid(), signal.SIGINT)  # the same Ctrl-C delivered again (torchrun): ignored
    time.sleep(0.01)


def test_sigint_while_setting_up_stops_at_once(sigint_restored):
    interrupts.RankStop().install()
    with pytest.raises(interrupts.Interrupted):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)


def test_second_sigint_exits_at_once():
    code = ("import os, signal, time\nfrom bench.interrupts import RankStop\n"
            "s = RankStop().install(); s.deferred = True\nprint('ready', flush=True)\n"
            "time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    time.sleep(interrupts.DUPLICATE_S + 0.3)
    assert proc.poll() is None  # the first one waits for a step boundary that never comes
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=5) == 130 and time.monotonic() - sent < 2


def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    files.write_json_atomic(path, {"status": "running"})

    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[: len(text) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="No space"):
        files.write_json_atomic(path, {"status": "ok", "pad": "x" * 10_000})
    assert json.loads(path.read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary left


def test_mark_status_keeps_a_rank_s_error_and_creates_what_is_missing(tmp_path):
    files.write_json_atomic(tmp_path / "metadata.json", {"run_id": "r", "status": "failed",
                                                         "error": "rank 1: boom"})
    run_status.mark_status(tmp_path, "interrupted", "interrupted by SIGINT")
    meta = files.read_json(tmp_path / "metadata.json")
    assert (meta["status"], meta["error"]) == ("interrupted", "rank 1: boom")
    summary = files.read_json(tmp_path / "summary.json")
    assert summary == {"run_id": tmp_path.name, "status": "interrupted",
                       "error": "interrupted by SIGINT"}


def test_descendants_finds_grandchildren():
    proc = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                             "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); "
                             "print(c.pid, flush=True); time.sleep(30)"], stdout=subprocess.PIPE,
                            text=True)
    try:
        grandchild = int(proc.stdout.readline())
        assert grandchild in interrupts.descendants(os.getpid())
        assert interrupts.descendants(proc.pid) == [grandchild]
    finally:
        for pid in (grandchild, proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.wait()


def test_record_table_round_trip():
    fields = ("step", "rank", "warmup", "step_ms", "tokens", "wait_ms")
    recs = [{"step": s, "rank": r, "warmup": s < 1, "step_ms": 1.5 * s + r, "tokens": 64,
             "wait_ms": 0.25 * r} for s in range(3) for r in range(2)]
    table = RecordTable(fields)
    table.extend(recs[:4])
    table.extend([])
    table.extend(recs[4:])
    back = table.records()
    assert back == recs and len(table) == 6
    assert [type(back[0][k]) for k in fields] == [int, int, bool, float, int, float]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_whose_interrupt_python_dropped_still_ends_the_sweep_as_interrupted(sig, capsys,
                                                                                    monkeypatch):
    """A KeyboardInterrupt raised inside a finalizer is printed and dropped; Hydra then exits 1
    on the interrupted job's failure. The driver recorded the signal: 130, and the resume hint."""
    from types import SimpleNamespace

    from bench.sweeps import multirun

    def hydra_sees_the_job_fail(argv):
        try:
            os.kill(os.getpid(), sig)
            time.sleep(1.0)  # the handler runs here
        except KeyboardInterrupt:
            pass  # dropped, as in a finalizer
        sys.exit(1)

    plan = SimpleNamespace(sweep_id="s", points=[object()])
    saved = {s: signal.getsignal(s) for s in interrupts.SweepStop.SIGNALS}
    monkeypatch.setattr(multirun, "_run_hydra", hydra_sees_the_job_fail)
    assert multirun._run_and_report(plan, [], "basic") == interrupts.EXIT_INTERRUPTED
    assert {s: signal.getsignal(s) for s in saved} == saved  # the driver's handlers are back
    assert "sweep s interrupted; resume it" in capsys.readouterr().out


def test_a_failed_sweep_without_a_stop_still_exits_as_hydra_said(monkeypatch):
    from types import SimpleNamespace

    from bench.sweeps import multirun

    def hydra_fails(argv):
        sys.exit(1)

    monkeypatch.setattr(multirun, "_run_hydra", hydra_fails)
    with pytest.raises(SystemExit):
        multirun._run_and_report(SimpleNamespace(sweep_id="s", points=[object()]), [], "basic")

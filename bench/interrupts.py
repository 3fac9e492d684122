"""Ctrl-C and SIGTERM: stop every rank, keep what was measured, say `interrupted`.

The driver (`hetbench run`) starts torchrun in its own session, so a terminal's Ctrl-C reaches
the driver alone, which is the one place that decides:
  first SIGINT / SIGTERM / SIGHUP -> SIGINT to torchrun, which forwards it to every rank once;
  a second one                    -> SIGKILL to torchrun and every rank (kill at once).
A rank's first SIGINT stops it at the next step boundary (at once while it sets up): it writes
its pending records, rank 0 writes summary.json and metadata.json with status `interrupted`,
and it exits 130. Ranks stop at nearly the same step; one that started one more step finds
its peers gone (Gloo fails the collective as the connection closes) and stops too. A second
SIGINT to a rank exits it at once, unless it comes within DUPLICATE_S of the first: under a
bare `torchrun` in a terminal, the terminal and torchrun each deliver the same Ctrl-C.
SIGTERM to a rank is torchrun stopping the survivors of a failure: that stays `failed`.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
DUPLICATE_S = 1.0


class Interrupted(BaseException):
    """Raised on a rank to stop it (BaseException: no `except Exception` swallows it)."""


class RankStop:
    """A rank's SIGINT handler: stop at the next `check()` (or at once while not `deferred`)."""

    def __init__(self):
        self.signum, self.at, self.deferred = None, 0.0, False

    def install(self) -> "RankStop":
        signal.signal(signal.SIGINT, self._on_signal)
        return self

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _on_signal(self, signum, _frame) -> None:
        now = time.monotonic()
        if self.signum is not None:
            if now - self.at < DUPLICATE_S:
                return  # the same Ctrl-C, delivered twice
            os._exit(128 + signum)  # a second Ctrl-C: at once, as promised
        self.signum, self.at = signum, now
        if not self.deferred:
            raise Interrupted(signal.Signals(signum).name)

    def check(self) -> None:
        """Call at a step boundary: raises Interrupted once a signal came."""
        if self.signum is not None:
            raise Interrupted(signal.Signals(self.signum).name)


class _Handlers:
    """A context manager that installs the subclass's `_on_signal` for SIGNALS and restores the
    handlers that were there."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __enter__(self):
        self.saved = {sig: signal.signal(sig, self._on_signal) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


class ForwardToTorchrun(_Handlers):
    """The driver's handlers while torchrun starts and runs (a context manager, entered before
    torchrun starts so that no signal can orphan it); `signum`: the first signal, or None."""

    def __init__(self, label: str = "run"):
        self.proc, self.label, self.signum, self.saved = None, label, None, {}

    def attach(self, proc) -> None:
        """The started torchrun; a signal that came while it was starting is forwarded now."""
        self.proc = proc
        if self.signum is not None:
            _send(proc.pid, signal.SIGINT)

    def _on_signal(self, signum, _frame) -> None:
        if self.signum is None:
            self.signum = signum
            print(f"\nhetbench: {signal.Signals(signum).name}: stopping every rank of the "
                  f"{self.label} (press Ctrl-C again to kill them at once)", file=sys.stderr,
                  flush=True)
            if self.proc is not None:
                _send(self.proc.pid, signal.SIGINT)
            return
        print("hetbench: killing every rank now", file=sys.stderr, flush=True)
        if self.proc is not None:
            for pid in descendants(self.proc.pid) + [self.proc.pid]:
                _send(pid, signal.SIGKILL)


def _send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass  # already gone


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc; ranks run in their own sessions, so a process
    group does not reach them). Empty where /proc is not there."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


# ---------------------------------------------------------------------------------------------
# A sweep's own jobs: submitit_local starts each point as a child process of the driver (not in
# a session of its own), and a child outlives its parent. A stopped sweep stops them.


class SweepStop(_Handlers):
    """The driver's handlers while Hydra's launcher runs: SIGTERM and SIGHUP stop the sweep as
    Ctrl-C does (KeyboardInterrupt), so that `kill <driver>` also leaves no job behind.

    Each also records that the user stopped the sweep (`signalled`). A KeyboardInterrupt that
    lands in a finalizer while submitit polls its jobs is printed and dropped by Python; the
    driver then waits for the interrupted job, and Hydra exits 1 on its failure. With the record
    the driver still reports the stop as one (130), not as a failed sweep."""

    def __enter__(self) -> "SweepStop":
        self.signalled: int | None = None
        return super().__enter__()

    def _on_signal(self, signum, _frame) -> None:
        self.signalled = signum
        raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_below(pid: int, grace_s: float) -> list[int]:
    """SIGTERM to each child of `pid`; after `grace_s` (or at once on another Ctrl-C / SIGTERM),
    SIGKILL to every process still below it (ranks in their own sessions included). Returns
    the pids that had to be killed."""
    below = descendants(pid)
    for child in below:
        if _parent(child) == pid:
            _send(child, signal.SIGTERM)  # a submitit controller forwards it to its job
    hurry = []
    saved = {sig: signal.signal(sig, lambda *_: hurry.append(1))
             for sig in SweepStop.SIGNALS}
    try:
        deadline = time.monotonic() + grace_s
        while not hurry and time.monotonic() < deadline and any(map(_alive, below)):
            time.sleep(0.2)
        left = [p for p in dict.fromkeys(below + descendants(pid)) if _alive(p)]
        for p in left:
            _send(p, signal.SIGKILL)
        return left
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: [state, ppid, ...]; [] once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _parent(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[1]) if fields else 0


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"  # a zombie has exited; only its parent's wait is due

"""torchrun worker entry: `torchrun ... -m bench.train [overrides...]`.

Every rank composes the same config, joins the process group, runs, and on every path writes
what it measured and leaves the group. Exit status: 0 ok, 1 failed, 2 bad input, 130
interrupted (SIGINT: bench.interrupts).
"""
from __future__ import annotations

import errno
import os
import signal
import sys
import traceback
from pathlib import Path

from bench import config as config_mod
from bench import dist as dist_mod
from bench import interrupts


def _exit_on_sigterm(signum, _frame):
    # torchrun stops the surviving ranks with SIGTERM when one fails: unwind through `finally`
    # so that this rank's records reach the disk.
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # A full disk raises OSError (EFBIG past a file-size limit) instead of killing the rank.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    stop = interrupts.RankStop().install()
    try:
        cfg = config_mod.compose(argv)
        config_mod.validate(cfg, launched_world_size=dist_mod.env_world_size())
    except config_mod.ConfigError as err:
        print(f"hetbench: error: {err}", file=sys.stderr)
        return 2
    from bench.worker import RankRun, resolve_run_id  # torch-heavy imports after validation

    try:
        env = dist_mod.init(cfg)
    except config_mod.ConfigError as err:  # train.device=cuda with too few GPUs on this node
        print(f"hetbench: error: {err}", file=sys.stderr)
        return 2
    run, status, error = None, "failed", None
    try:
        dist_mod.set_cpu_threads(cfg.train.threads_per_rank, env.local_world_size) \
            if env.device.type == "cpu" else None
        run_id = resolve_run_id(cfg)
        run_dir = Path(os.environ.get("HETBENCH_RUN_DIR") or Path(cfg.out_root) / run_id)
        run = RankRun(cfg, env, run_dir, run_id,
                      calibrate_only=bool(os.environ.get("HETBENCH_CALIBRATE_ONLY")), stop=stop)
        run.setup()
        run.train()
        status = "ok"
    except BaseException as exc:  # noqa: BLE001 - record any failure, then re-raise below
        status, error = _outcome(exc, stop, env.rank, run)
    finally:
        status, error = _close(run, status, error, env.rank)
        dist_mod.teardown(status == "ok")
    return {"ok": 0, "interrupted": interrupts.EXIT_INTERRUPTED}.get(status, 1)


def _outcome(exc: BaseException, stop, rank: int, run) -> tuple[str, str]:
    """(status, error) of a run that raised. After a Ctrl-C, whatever stopped the rank (its own
    check, or a collective whose peers had already stopped) is the interrupt."""
    if stop.requested:
        return "interrupted", f"rank {rank}: interrupted ({exc or type(exc).__name__})"
    error = f"rank {rank}: {_describe(exc, run)}"
    if not isinstance(exc, SystemExit):
        traceback.print_exc()
    print(f"hetbench: {error}", file=sys.stderr, flush=True)
    return "failed", error


def _describe(exc: BaseException, run) -> str:
    """One line; a full disk names the run directory and the fix."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        where = run.run_dir if run is not None else "the run directory"
        return (f"disk full writing {exc.filename or where} ({os.strerror(exc.errno)}); run "
                f"directory {where}: free space there or set out_root= to a disk with room")
    return f"{type(exc).__name__}: {exc}"


def _close(run, status: str, error, rank: int) -> tuple[str, str]:
    """Write what was measured; a rank that cannot (disk full) fails, but still leaves."""
    if run is None:
        return status, error
    try:
        run.close(status, error)
    except OSError as exc:
        error = f"rank {rank}: {_describe(exc, run)}"
        print(f"hetbench: {error}", file=sys.stderr, flush=True)
        return "failed", error
    return status, error


DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def exit_now(code: int) -> None:
    # Everything is on disk and the group is destroyed. Skip interpreter finalization, where
    # Gloo's C++ worker threads can still hold Python objects and abort the process (SIGABRT),
    # which would turn a good run into a failed one.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))

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

from bench import interrupts
from bench.errors import ConfigError
from bench.rank import dist as dist_mod
from bench.rank import startup
from bench.rank.startup import exit_now


def main(argv: list[str]) -> int:
    startup.install_sigterm()
    # A full disk raises OSError (EFBIG past a file-size limit) instead of killing the rank.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    stop = interrupts.RankStop().install()
    cfg = startup.compose(argv)
    if cfg is None:
        return startup.EXIT_BAD_INPUT
    from bench.rank.run import RankRun  # torch-heavy imports after validation

    try:
        env = dist_mod.init(cfg)
    except ConfigError as err:  # train.device=cuda with too few GPUs on this node
        return startup.bad_input(err)
    run, status, error = None, "failed", None
    try:
        startup.threads(cfg, env)
        run_id, run_dir = startup.run_dir_of(cfg)
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
        _tell_torchrun(exc)
    print(f"hetbench: {error}", file=sys.stderr, flush=True)
    return "failed", error


def _tell_torchrun(exc: BaseException) -> None:
    """What torch's @record does for an entry that raises: the exception into torchrun's error
    file, so that its failure summary names this rank as the root cause (this entry returns an
    exit status instead of raising, so the decorator would see nothing)."""
    if not os.environ.get("TORCHELASTIC_ERROR_FILE"):
        return
    try:
        from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

        ErrorHandler().record_exception(exc)
    except Exception:  # noqa: BLE001 - telling torchrun is a courtesy, never a second failure
        pass


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


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))

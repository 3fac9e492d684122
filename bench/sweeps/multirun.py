"""`hetbench run -m ...` as a Hydra multirun.

  1. before Hydra (bench.sweeps.plan): every point composed and validated, one time dilation D
     calibrated for all paced points (runs/<sweep_id>/time_scale.json), an empty sweep table;
  2. Hydra's own multirun (`hydra.main`, `--multirun`): its sweeper expands the overrides and
     `hydra.sweeper.params`, its launcher runs the jobs: `basic` one after the other in this
     process, `submitit_local` as local jobs, `submitit_slurm` as Slurm jobs (bench.sweeps.slurm);
  3. each job (`run_point`) runs one torchrun group into runs/<sweep_id>/<point>/, Hydra's job
     directory (configs/config.yaml: hydra.sweep), and returns its row instead of raising: the
     basic sweeper aborts the whole sweep on a job that raises;
  4. `SweepTable.on_job_end` writes that row into sweep.csv / sweep.json.

The swept keys and the number of points reach every job as the callback's parameters (Hydra
passes its own overrides to every job, on any host), so a job names its directory alone.
"""
from __future__ import annotations

import os
import sys
import time

from bench import config as config_mod
from bench import interrupts
from bench.costs import cluster
from bench.driver.run import say_latest
from bench.errors import ConfigError
from bench.results import files
from bench.sweeps import job, table, timescale
from bench.sweeps.job import is_hydra_override
from bench.sweeps.plan import Plan, plan
from bench.sweeps.slurm import check_allocation, check_submit_host, is_slurm

TABLE = "hydra.callbacks.sweep_table"
LAUNCHERS_NEEDING_CLUSTER = ("submitit_local", "submitit_slurm", "slurm")
STOP_GRACE_S = 15.0  # a stopped point's ranks write their records and summary in a few s


def run_sweep(overrides: list[str]) -> int:
    hydra_args = [o for o in overrides if is_hydra_override(o)]
    launcher = _launcher(hydra_args)
    p = plan([o for o in overrides if not is_hydra_override(o)])
    if hydra_args:  # a misspelt launcher or key fails here, not after the calibration
        _check_launcher(config_mod.compose_hydra(p.points[0].overrides + hydra_args), p)
    p.sweep_dir.mkdir(parents=True, exist_ok=True)
    say_latest(p.sweep_dir)  # out_root/latest names the sweep, never one of its points
    concurrent = len(p.points) if launcher == "submitit_local" else 1  # it starts every point
    try:
        timescale.share_time_scale(p, concurrent)
    except RuntimeError as err:  # the calibration job failed: no point could run either
        print(f"hetbench: sweep {p.sweep_id}: error: {err}", flush=True)
        table.write_tables(p, [table.not_run(p, point, f"not run: {err}") for point in p.points])
        return 1
    table.write_tables(p, [])  # rows arrive as points end (SweepTable)
    print(f"hetbench: sweep {p.sweep_id}: {len(p.points)} points over "
          f"{', '.join(table.swept_keys(p.points)) or 'no swept key'} -> {p.sweep_dir} "
          f"(launcher: {launcher})", flush=True)
    return _run_and_report(p, hydra_argv(p, overrides), launcher)


def _launcher(hydra_args: list[str]) -> str:
    """The launcher chosen with hydra/launcher=...; a submitit one needs the `cluster` extra."""
    name = next((o.split("=", 1)[1] for o in hydra_args
                 if o.lstrip("+").startswith("hydra/launcher=")), "basic")
    if name in LAUNCHERS_NEEDING_CLUSTER:
        try:
            import hydra_plugins.hydra_submitit_launcher  # noqa: F401
        except ImportError:
            raise ConfigError("hydra/launcher", name, "this launcher is Hydra's submitit plugin: "
                              "pip install 'hetbench[cluster]'") from None
    return name


def _check_launcher(hydra_cfg, p: Plan) -> None:
    """A Slurm sweep's nodes and GPUs must fit every point's ranks (bench.sweeps.slurm)."""
    if is_slurm(hydra_cfg.launcher):
        check_allocation(hydra_cfg.launcher, [cluster.world_size(c) for c in p.configs])
        check_submit_host()


def hydra_argv(p: Plan, overrides: list[str]) -> list[str]:
    """Hydra's command line: the user's overrides, the sweep's id and directory, and what every
    job needs to name itself (the swept keys, the number of points)."""
    mine = [o for o in overrides if o.split("=", 1)[0].lstrip("+") != "sweep_id"]
    keys = ",".join(repr(k) for k in table.swept_keys(p.points))
    return ["hetbench", "--multirun", *mine, f"sweep_id={p.sweep_id}",
            f"hydra.sweep.dir={p.sweep_dir.resolve()}",
            f"{TABLE}.swept_keys=[{keys}]", f"{TABLE}.points_total={len(p.points)}"]


def _run_and_report(p: Plan, argv: list[str], launcher: str = "basic") -> int:
    started = time.monotonic()
    job.CLOCK = job.Clock(len(p.points))
    stop = interrupts.SweepStop()
    try:
        with stop:
            _run_hydra(argv)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, or a point that was interrupted (SweepTable)
        return _interrupted(p, launcher)
    except SystemExit:  # Hydra exits on a failed job: one the stop ended, or a real failure
        if stop.signalled is None:
            raise
        return _interrupted(p, launcher)
    finally:
        job.CLOCK = None
    return _final_line(p, time.monotonic() - started)


def _interrupted(p: Plan, launcher: str) -> int:
    if launcher == "submitit_local":
        _stop_local_jobs(p)
    print(f"hetbench: sweep {p.sweep_id} interrupted; resume it with the same command and "
          f"sweep_id={p.sweep_id} (finished points are kept)", flush=True)
    return interrupts.EXIT_INTERRUPTED


def _stop_local_jobs(p: Plan) -> None:
    """submitit_local's jobs are children of this process that would outlive it and finish
    their points unseen (racing a resumed sweep): each is asked to stop, as Ctrl-C stops a
    point, and whatever still runs after STOP_GRACE_S is killed."""
    print(f"hetbench: sweep {p.sweep_id}: stopping its local jobs (Ctrl-C again to kill them "
          f"at once)", flush=True)
    killed = interrupts.stop_below(os.getpid(), STOP_GRACE_S)
    if killed:
        print(f"hetbench: sweep {p.sweep_id}: killed {len(killed)} processes that were still "
              f"running after {STOP_GRACE_S:.0f} s", flush=True)


def _run_hydra(argv: list[str]) -> None:
    """Hydra's supported entry, `hydra.main`, reads its arguments from sys.argv."""
    import hydra
    from hydra.core.global_hydra import GlobalHydra

    config_mod.register_schema()
    _register_launchers()
    app = hydra.main(config_path=str(config_mod.config_dir()), config_name="config",
                     version_base="1.3")(job.run_point)
    saved, sys.argv = sys.argv, argv
    try:
        app()
    finally:
        sys.argv = saved
        GlobalHydra.instance().clear()


def _register_launchers() -> None:
    """hydra/launcher=slurm's class sits in a module Hydra's plugin scan skips (it would import
    submitit on every start): Hydra knows it once registered (Plugins.register, its API for it)."""
    try:
        from hydra_plugins.hetbench import _slurm_launcher
    except ImportError:  # no cluster extra: a submitit launcher was refused before this
        return
    from hydra.core.plugins import Plugins

    Plugins.instance().register(_slurm_launcher.SlurmLauncher)


def _final_line(p: Plan, elapsed: float) -> int:
    rows = files.read_json(p.sweep_dir / "sweep.json")["points"]
    failed = [r["point"] for r in rows if r["status"] not in ("ok", "degraded")]
    degraded = [r["point"] for r in rows if r["status"] == "degraded"]
    missing = len(p.points) - len(rows)
    ok = len(rows) - len(failed) - len(degraded)
    print(f"hetbench: sweep {p.sweep_id} done in {job.fmt_s(elapsed)}: {ok} ok, "
          f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}"
          f"{f', {len(degraded)} degraded (the host fell behind; a resume reruns them): ' + ', '.join(degraded) if degraded else ''}"
          f"{f', {missing} never reported' if missing else ''}\n"
          f"hetbench: results in {p.sweep_dir}/sweep.csv; report: hetbench report {p.sweep_dir}",
          flush=True)
    return 1 if failed or missing else 0

"""`hetbench run -m ...` as a Hydra multirun.

  1. before Hydra (bench.sweep): every point composed and validated, one time dilation D
     calibrated for all paced points (runs/<sweep_id>/time_scale.json), an empty sweep table;
  2. Hydra's own multirun (`hydra.main`, `--multirun`): its sweeper expands the overrides and
     `hydra.sweeper.params`, its launcher runs the jobs: `basic` one after the other in this
     process, `submitit_local` as local jobs, `submitit_slurm` as Slurm jobs (bench.slurm);
  3. each job (`run_point`) runs one torchrun group into runs/<sweep_id>/<point>/, Hydra's job
     directory (configs/config.yaml: hydra.sweep), and returns its row instead of raising: the
     basic sweeper aborts the whole sweep on a job that raises;
  4. `SweepTable.on_job_end` writes that row into sweep.csv / sweep.json.

The swept keys and the number of points reach every job as the callback's parameters (Hydra
passes its own overrides to every job, on any host), so a job names its directory alone.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from bench import config as config_mod
from bench import driver, interrupts, sinks, sweep
from bench.config import ConfigError

TABLE = "hydra.callbacks.sweep_table"
HEADLINE_FILE = "headline.json"
LAUNCHERS_NEEDING_CLUSTER = ("submitit_local", "submitit_slurm", "slurm")
STOP_GRACE_S = 15.0  # a stopped point's ranks write their records and summary in a few s


def _point_dir(num: Any, keys: Any, overrides: Any) -> str:
    """hydra.sweep.subdir: `003_latency_ms=5,cluster=b`, the name bench.sweep.plan gave it."""
    return sweep.point_name(int(num), swept_values(list(overrides), list(keys)))


if not OmegaConf.has_resolver("hetbench_point"):  # job processes import this module too
    OmegaConf.register_new_resolver("hetbench_point", _point_dir)


def swept_values(overrides: list[str], keys: list[str]) -> dict:
    """{key: value} of a job's overrides whose key was swept, in the job's order."""
    pairs = (o.split("=", 1) for o in overrides if "=" in o)
    return {k: v for k, v in pairs if k in keys}


def is_hydra_override(override: str) -> bool:
    return override.lstrip("+~").startswith(("hydra.", "hydra/"))


# ---------------------------------------------------------------------------------------------
# The driver: before, during and after Hydra's multirun.


def run_sweep(overrides: list[str]) -> int:
    hydra_args = [o for o in overrides if is_hydra_override(o)]
    launcher = _launcher(hydra_args)
    p = sweep.plan([o for o in overrides if not is_hydra_override(o)])
    if hydra_args:  # a misspelt launcher or key fails here, not after the calibration
        _check_launcher(config_mod.compose_hydra(p.points[0].overrides + hydra_args), p)
    p.sweep_dir.mkdir(parents=True, exist_ok=True)
    concurrent = len(p.points) if launcher == "submitit_local" else 1  # it starts every point
    try:
        sweep.share_time_scale(p, concurrent)
    except RuntimeError as err:  # the calibration job failed: no point could run either
        print(f"hetbench: sweep {p.sweep_id}: error: {err}", flush=True)
        sweep.write_tables(p, [sweep.not_run(p, point, f"not run: {err}") for point in p.points])
        return 1
    sweep.write_tables(p, [])  # rows arrive as points end (SweepTable)
    print(f"hetbench: sweep {p.sweep_id}: {len(p.points)} points over "
          f"{', '.join(sweep.swept_keys(p.points)) or 'no swept key'} -> {p.sweep_dir} "
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


def _check_launcher(hydra_cfg, p: sweep.Plan) -> None:
    """A Slurm sweep's nodes and GPUs must fit every point's ranks (bench.slurm)."""
    from bench import slurm

    if slurm.is_slurm(hydra_cfg.launcher):
        slurm.check_allocation(hydra_cfg.launcher, [config_mod.world_size(c) for c in p.configs])
        slurm.check_submit_host()


def hydra_argv(p: sweep.Plan, overrides: list[str]) -> list[str]:
    """Hydra's command line: the user's overrides, the sweep's id and directory, and what every
    job needs to name itself (the swept keys, the number of points)."""
    mine = [o for o in overrides if o.split("=", 1)[0].lstrip("+") != "sweep_id"]
    keys = ",".join(repr(k) for k in sweep.swept_keys(p.points))
    return ["hetbench", "--multirun", *mine, f"sweep_id={p.sweep_id}",
            f"hydra.sweep.dir={p.sweep_dir.resolve()}",
            f"{TABLE}.swept_keys=[{keys}]", f"{TABLE}.points_total={len(p.points)}"]


def _run_and_report(p: sweep.Plan, argv: list[str], launcher: str = "basic") -> int:
    started = time.monotonic()
    global _CLOCK
    _CLOCK = Clock(len(p.points))
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
        _CLOCK = None
    return _final_line(p, time.monotonic() - started)


def _interrupted(p: sweep.Plan, launcher: str) -> int:
    if launcher == "submitit_local":
        _stop_local_jobs(p)
    print(f"hetbench: sweep {p.sweep_id} interrupted; resume it with the same command and "
          f"sweep_id={p.sweep_id} (finished points are kept)", flush=True)
    return interrupts.EXIT_INTERRUPTED


def _stop_local_jobs(p: sweep.Plan) -> None:
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
                     version_base="1.3")(run_point)
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


def _final_line(p: sweep.Plan, elapsed: float) -> int:
    rows = sinks.read_json(p.sweep_dir / "sweep.json")["points"]
    failed = [r["point"] for r in rows if r["status"] != "ok"]
    missing = len(p.points) - len(rows)
    print(f"hetbench: sweep {p.sweep_id} done in {_fmt_s(elapsed)}: {len(rows) - len(failed)} ok, "
          f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}"
          f"{f', {missing} never reported' if missing else ''}\n"
          f"hetbench: results in {p.sweep_dir}/sweep.csv; report: hetbench report {p.sweep_dir}",
          flush=True)
    return 1 if failed or missing else 0


# ---------------------------------------------------------------------------------------------
# One job: one point, one torchrun group (on every node of a Slurm job).

_CLOCK = None  # the driver's progress clock; None in a launcher's own job process


def run_point(cfg) -> dict | None:
    """Hydra's task function. Returns the point's row (None on a Slurm node other than the
    first); never raises, so that one bad point does not end the sweep."""
    point, sweep_dir, total = current_point()
    try:
        return _run_point(cfg, point, sweep_dir, total)
    except Exception as err:  # noqa: BLE001 - recorded as this point's failure
        print(f"hetbench: point {point.name} failed: {type(err).__name__}: {err}", flush=True)
        return _row_with_error(point, sweep_dir, cfg.sweep_id, f"{type(err).__name__}: {err}")


def current_point() -> tuple[sweep.Point, Path, int]:
    """This job's point, from Hydra's job config (its number, overrides and directory)."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    table = hc.callbacks.sweep_table
    overrides = [o for o in hc.overrides.task if not is_hydra_override(o)]
    run_dir = Path(hc.runtime.output_dir)
    swept = swept_values(overrides, list(table.swept_keys))
    return sweep.Point(int(hc.job.num), overrides, swept, run_dir.name), run_dir.parent, \
        int(table.points_total or 0)


def _run_point(cfg, point: sweep.Point, sweep_dir: Path, total: int) -> dict | None:
    from bench import slurm

    node = slurm.node_for_job()
    run_id, run_dir = f"{cfg.sweep_id}-{point.index:03d}", sweep_dir / point.name
    clock = _CLOCK or Clock(total)
    label = f"hetbench: sweep {cfg.sweep_id}: point {point.index + 1} of {total} {point.name}"
    if sweep.finished_ok(run_dir):
        clock.skip()
        print(f"{label}: already done, skipped", flush=True)
        return sweep.finished_ok_row(point, run_id, run_dir) if node.leader else None
    overrides = point_overrides(cfg, point, sweep_dir, run_id,
                                local=node.command is driver.torchrun_command)
    if node.leader:
        _clear(run_dir)
    print(f"{label}: starting; elapsed {_fmt_s(clock.elapsed())}, {clock.eta_text()}", flush=True)
    started = time.monotonic()
    rc = _launch(cfg, point, overrides, run_dir, run_id, node)
    elapsed = time.monotonic() - started
    clock.done(elapsed)
    status = "ok" if rc == 0 and sweep.finished_ok(run_dir) else \
        "interrupted" if rc == interrupts.EXIT_INTERRUPTED else "failed"
    print(f"{label}: {status} in {_fmt_s(elapsed)}; {clock.eta_text()}", flush=True)
    if not node.leader:
        return None
    row = sweep.row_for(point, run_id, run_dir, status, elapsed, reused=False)
    sinks.write_json_atomic(run_dir / HEADLINE_FILE, row)
    return row


def point_overrides(cfg, point: sweep.Point, sweep_dir: Path, run_id: str,
                    local: bool = True) -> list[str]:
    """What the ranks compose: the job's overrides, its run id, the sweep's W&B group and, for a
    paced point, the sweep's shared D. `cfg` gets the same values and is validated again (a
    sweeper that picks points as it goes was not checked before the start). `local`: every rank
    runs on this machine (not one node of a Slurm job, whose ranks check their own node's GPUs:
    bench.dist.choose_device)."""
    extra = [f"run_id={run_id}"]
    if "logger.wandb.group" not in {o.split("=", 1)[0] for o in point.overrides}:
        extra.append(f"logger.wandb.group={cfg.sweep_id}")
    scale_file = sweep_dir / sweep.TIME_SCALE_FILE
    if cfg.emulation.time_scale is None and scale_file.exists() and sweep.paces(cfg):
        extra.append(f"emulation.time_scale={sinks.read_json(scale_file)['time_scale']!r}")
    for o in extra:
        key, value = o.split("=", 1)
        OmegaConf.update(cfg, key, value if key != "emulation.time_scale" else float(value))
    config_mod.validate(cfg)
    if local:
        config_mod.validate_devices(cfg)
    return point.overrides + extra


def _launch(cfg, point, overrides, run_dir: Path, run_id: str, node) -> int:
    from hydra.core.utils import env_override

    # The W&B logger puts the swept keys at the top of the run's config (bench.wandb_logger).
    with env_override({"HETBENCH_SWEPT": json.dumps(point.swept)}):
        try:
            return driver.launch(cfg, overrides, run_dir, run_id, command=node.command,
                                 leader=node.leader)
        except OSError as err:  # torchrun could not start: this point fails, the sweep goes on
            run_dir.mkdir(parents=True, exist_ok=True)
            driver.mark_failed(run_dir, f"could not start torchrun: {err}")
            return 1


def _clear(run_dir: Path) -> None:
    """Hydra made the job directory; what an interrupted run left there goes (rank logs
    append, so a point starts clean)."""
    if run_dir.exists() and any(run_dir.iterdir()):
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def _row_with_error(point: sweep.Point, sweep_dir: Path, sweep_id: str, error: str) -> dict:
    run_dir = sweep_dir / point.name
    row = sweep.row_for(point, f"{sweep_id}-{point.index:03d}", run_dir, "failed", None, False)
    row["error"] = error
    return row


# ---------------------------------------------------------------------------------------------
# The sweep table, as a Hydra callback.


class SweepTable(Callback):
    """hydra.callbacks.sweep_table (configs/config.yaml): records each point as its job ends.
    `on_job_end` runs where the job ran (this process, or a submitit job's own), so the table
    is updated in place under a lock; a point that was interrupted stops the sweep. Its
    parameters are read by the jobs (current_point), Hydra hands them to the constructor."""

    def __init__(self, swept_keys=(), points_total=None):
        self.swept_keys, self.points_total = list(swept_keys), points_total

    def on_job_end(self, config, job_return, **kwargs) -> None:
        from hydra.core.utils import JobStatus

        if job_return.status != JobStatus.COMPLETED:  # run_point never raises; a bug did
            return
        row = job_return.return_value
        if not isinstance(row, dict):  # a Slurm node other than the first: it reports nothing
            return
        sweep.upsert_row(Path(config.hydra.runtime.output_dir).parent, row)
        if row["status"] == "interrupted":  # the user stopped it: no further point starts
            raise KeyboardInterrupt


# ---------------------------------------------------------------------------------------------
# Progress.


class Clock:
    """Elapsed time and an estimate of what is left, from the points actually run."""

    def __init__(self, total: int):
        self.start, self.total = time.monotonic(), total
        self.finished, self.runs, self.run_s = 0, 0, 0.0  # points done; points run, their seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def skip(self) -> None:
        self.finished += 1

    def done(self, seconds: float) -> None:
        self.finished, self.runs = self.finished + 1, self.runs + 1
        self.run_s += seconds

    def eta_text(self) -> str:
        left = self.total - self.finished
        if left <= 0:
            return "none left"
        if not self.runs:
            return f"{left} left"
        return f"{left} left, ~{_fmt_s(left * self.run_s / self.runs)} to go"


def _fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


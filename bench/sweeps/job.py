"""One job of a sweep: one point, one torchrun group, run as Hydra's task function (in this
process, a submitit job, or on every node of a Slurm job), returning the point's row instead of
raising (Hydra's basic sweeper aborts the whole sweep on a job that raises); SweepTable, the
Hydra callback that puts each row into the sweep table; the progress clock.

The swept keys and the number of points reach every job as the callback's parameters (Hydra
passes its own overrides to every job, on any host), so a job names its directory alone."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from bench import config as config_mod
from bench import interrupts
from bench.driver.launch import launch
from bench.results import files
from bench.results.status import mark_failed
from bench.sweeps import table
from bench.sweeps.plan import Point, point_name, run_id_of
from bench.sweeps.slurm import node_for_job
from bench.sweeps.timescale import TIME_SCALE_FILE, paces

HEADLINE_FILE = "headline.json"


def _point_dir(num: Any, keys: Any, overrides: Any) -> str:
    """hydra.sweep.subdir: `003_latency_ms=5,cluster=b`, the name bench.sweeps.plan gave it."""
    return point_name(int(num), swept_values(list(overrides), list(keys)))


if not OmegaConf.has_resolver("hetbench_point"):  # job processes import this module too
    OmegaConf.register_new_resolver("hetbench_point", _point_dir)


def swept_values(overrides: list[str], keys: list[str]) -> dict:
    """{key: value} of a job's overrides whose key was swept, in the job's order."""
    pairs = (o.split("=", 1) for o in overrides if "=" in o)
    return {k: v for k, v in pairs if k in keys}


def is_hydra_override(override: str) -> bool:
    return override.lstrip("+~").startswith(("hydra.", "hydra/"))


CLOCK = None  # the driver's progress clock; None in a launcher's own job process


def run_point(cfg) -> dict | None:
    """Hydra's task function. Returns the point's row (None on a Slurm node other than the
    first); never raises, so that one bad point does not end the sweep."""
    point, sweep_dir, total = current_point()
    try:
        return _run_point(cfg, point, sweep_dir, total)
    except Exception as err:  # noqa: BLE001 - recorded as this point's failure
        print(f"hetbench: point {point.name} failed: {type(err).__name__}: {err}", flush=True)
        return _row_with_error(point, sweep_dir, cfg.sweep_id, f"{type(err).__name__}: {err}")


def current_point() -> tuple[Point, Path, int]:
    """This job's point, from Hydra's job config (its number, overrides and directory)."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    table = hc.callbacks.sweep_table
    overrides = [o for o in hc.overrides.task if not is_hydra_override(o)]
    run_dir = Path(hc.runtime.output_dir)
    swept = swept_values(overrides, list(table.swept_keys))
    return Point(int(hc.job.num), overrides, swept, run_dir.name), run_dir.parent, \
        int(table.points_total or 0)


def _run_point(cfg, point: Point, sweep_dir: Path, total: int) -> dict | None:
    node = node_for_job()
    run_id, run_dir = run_id_of(cfg.sweep_id, point), sweep_dir / point.name
    clock = CLOCK or Clock(total)
    label = f"hetbench: sweep {cfg.sweep_id}: point {point.index + 1} of {total} {point.name}"
    if table.finished_ok(run_dir):
        clock.skip()
        print(f"{label}: already done, skipped", flush=True)
        return table.finished_ok_row(point, run_id, run_dir) if node.leader else None
    overrides = point_overrides(cfg, point, sweep_dir, run_id, local=node.local,
                                nodes=node.nodes)
    if node.leader:
        _clear(run_dir)
    print(f"{label}: starting; elapsed {fmt_s(clock.elapsed())}, {clock.eta_text()}", flush=True)
    started = time.monotonic()
    rc = _launch(cfg, point, overrides, run_dir, run_id, node)
    elapsed = time.monotonic() - started
    clock.done(elapsed)
    status = "ok" if rc == 0 and table.finished_ok(run_dir) else \
        "degraded" if rc == 0 and table.summary_status(run_dir) == "degraded" else \
        "interrupted" if rc == interrupts.EXIT_INTERRUPTED else "failed"
    print(f"{label}: {status} in {fmt_s(elapsed)}; {clock.eta_text()}", flush=True)
    if not node.leader:
        return None
    row = table.row_for(point, run_id, run_dir, status, elapsed, reused=False)
    files.write_json_atomic(run_dir / HEADLINE_FILE, row)
    return row


def point_overrides(cfg, point: Point, sweep_dir: Path, run_id: str,
                    local: bool = True, nodes: int = 1) -> list[str]:
    """What the ranks compose: the job's overrides, its run id, the sweep's W&B group and, for a
    paced point, the sweep's shared D. `cfg` gets the same values and is validated again (a
    sweeper that picks points as it goes was not checked before the start). `local`: every rank
    runs on this machine (not one node of a Slurm job, whose ranks check their own node's GPUs:
    bench.rank.dist.choose_device)."""
    extra = [f"run_id={run_id}"]
    if "logger.wandb.group" not in {o.split("=", 1)[0] for o in point.overrides}:
        extra.append(f"logger.wandb.group={cfg.sweep_id}")
    scale_file = sweep_dir / TIME_SCALE_FILE
    if cfg.emulation.time_scale is None and scale_file.exists() and paces(cfg, nodes):
        extra.append(f"emulation.time_scale={files.read_json(scale_file)['time_scale']!r}")
    for o in extra:
        key, value = o.split("=", 1)
        OmegaConf.update(cfg, key, value if key != "emulation.time_scale" else float(value))
    config_mod.validate(cfg)
    if local:
        config_mod.validate_devices(cfg)
    return point.overrides + extra


def _launch(cfg, point, overrides, run_dir: Path, run_id: str, node) -> int:
    from hydra.core.utils import env_override

    # The W&B logger puts the swept keys at the top of the run's config (bench.rank.wandb_logger).
    # A Slurm node's ranks also get the rendezvous endpoint (bench.sweeps.slurm: metadata).
    with env_override({"HETBENCH_SWEPT": json.dumps(point.swept), **node.env}):
        try:
            return launch(cfg, overrides, run_dir, run_id, command=node.command,
                          leader=node.leader, nodes=node.nodes)
        except OSError as err:  # torchrun could not start: this point fails, the sweep goes on
            run_dir.mkdir(parents=True, exist_ok=True)
            mark_failed(run_dir, f"could not start torchrun: {err}")
            return 1


def _clear(run_dir: Path) -> None:
    """Hydra made the job directory; what an interrupted run left there goes (rank logs
    append, so a point starts clean)."""
    if run_dir.exists() and any(run_dir.iterdir()):
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def _row_with_error(point: Point, sweep_dir: Path, sweep_id: str, error: str) -> dict:
    run_dir = sweep_dir / point.name
    row = table.row_for(point, run_id_of(sweep_id, point), run_dir, "failed", None, False)
    row["error"] = error
    return row


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
        table.upsert_row(Path(config.hydra.runtime.output_dir).parent, row)
        if row["status"] == "interrupted":  # the user stopped it: no further point starts
            raise KeyboardInterrupt


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
        return f"{left} left, ~{fmt_s(left * self.run_s / self.runs)} to go"


def fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"

"""What rank 0 leaves in the run directory and prints: metadata.json (who ran what, where,
how), summary.json (bench.results.metrics' numbers plus emulation, strategy, precision), the
console table, calibration.json for a sweep's shared D. Functions of a RankRun (bench.rank.run)."""
from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from pathlib import Path

import torch
import torch.distributed as dist

import bench
from bench import config as config_mod
from bench import emulate
from bench.costs import device_times, devices
from bench.emulate import lag
from bench.hardware import lookup
from bench.results import console, files, metrics, timebase


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(bench.__file__).parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def print_summary(summary: dict) -> None:
    if summary["status"] == "degraded":
        print(f"hetbench: run degraded: {summary.get('error')}", flush=True)
    elif summary["status"] != "ok":
        print(f"hetbench: run {summary['status']}; the table covers the steps every rank "
              "recorded before it stopped", flush=True)
    if summary.get("steps_measured"):
        print(console.format_table(summary), flush=True)
        print(console.format_headline(summary), flush=True)
    for line in emulate.warnings(summary):
        print("warning: " + line, flush=True)


def summary(run, status: str) -> dict:
    """summary.json's contents (docs/design.md, the run directory)."""
    doc = {"world_size": run.env.world_size, "steps_measured": 0}
    records = run.all_records.records()
    mode = str(run.cfg.emulation.lagged_steps)
    kept = lag.for_statistics(records, mode)
    if run.ranks:
        doc = metrics.summarize(kept, run.ranks, run.cfg.straggler_threshold, targets(run))
        doc["emulation"] = emulate.summary_section(records, run.ranks, run.pacer, run.link,
                                                   run.scale)
        if run.pacer.timeline:
            doc["emulation"].update(lag.section(records, mode, run.scale_changes))
    if doc.get("step_ms"):
        doc["host_step_ms_p50"] = doc["step_ms"]["p50"] * run.scale
        doc.update(strategy_numbers(run, kept, doc["tokens_per_s"]))
    doc["precision"] = precision_section(run)
    doc.update(schema_version=metrics.SCHEMA_VERSION, run_id=run.run_id, status=status,
               time_base=run.time_base, time_scale=run.scale,
               entropy_floor=run.trainer.language.entropy_floor if run.trainer else None)
    return doc


def degraded_because(run, summary: dict) -> str | None:
    """Why an otherwise fine run is `degraded`: more than emulation.max_lagged_share of its
    measured steps lagged (this machine fell behind the emulated timeline), so its numbers are
    the host's as much as the cluster's. None when it is not."""
    lagged = (summary.get("emulation") or {}).get("lagged_steps") or {}
    limit = float(run.cfg.emulation.max_lagged_share)
    if lagged.get("share", 0.0) <= limit:
        return None
    return (f"{lagged['share']:.0%} of measured steps lagged (this machine fell behind the "
            f"emulated timeline; over {limit:.0%} counts as degraded). Fix: a quieter machine, "
            "emulation.reference_scale=2.5 for more headroom, or emulation.rescale=auto")


def targets(run) -> list:
    """Each rank's compute target in the reported time base (None when not paced)."""
    if not run.pacer.active or run.pacer.time_scale is None:
        return [None] * len(run.ranks)
    return metrics.pacing_targets(run.ranks, run.pacer.time_scale / run.scale)


def strategy_numbers(run, records: list[dict], tokens_per_s: float) -> dict:
    """The strategy, its inter-site bytes per step (mean over measured steps, so a periodic
    sync counts at its rate) and the sum-of-speeds ideal it is measured against."""
    steps = metrics.complete_steps(records, run.env.world_size)
    per_step = [max(r["inter_site_bytes"] for r in recs) for recs in steps.values()]
    # The ideal is in device time: comparable only with a device-time tokens/s.
    ideal = run.fleet.ideal_tokens_per_s \
        if run.pacer.active and run.time_base == timebase.DEVICE else None
    return {"strategy": run.trainer.strategy.describe(),
            "inter_site_bytes_per_step": sum(per_step) / len(per_step) if per_step else None,
            "ideal_tokens_per_s": ideal,
            "ideal_share": ideal and tokens_per_s / ideal}


def write_calibration(run) -> None:
    """What a sweep needs to pick one D for all its points: every rank's host times."""
    host = [None] * run.env.world_size
    dist.all_gather_object(host, run.pacer.host_ms)
    if run.is_main:
        files.write_json_atomic(run.run_dir / "calibration.json",
                                {"world_size": run.env.world_size, "host_ms": host})


def write_metadata(run, status: str, error: str | None = None) -> None:
    env, model = run.env, run.trainer and run.trainer.model
    meta = {
        "schema_version": metrics.SCHEMA_VERSION, "run_id": run.run_id, "status": status,
        "versions": {"hetbench": bench.__version__, "git_sha": git_sha(),
                     "torch": torch.__version__, "python": platform.python_version()},
        "backend": env.backend, "world_size": env.world_size,
        "hosts": sorted({r["host"] for r in run.ranks}),
        "ranks": run.ranks,
        "clock_offsets": run.offsets,
        "model": {"name": run.cfg.model.name,
                  "params": model and model.num_params(non_embedding=False),
                  "flops_per_token": model and model.flops_per_token()},
        "entropy_floor": run.trainer and run.trainer.language.entropy_floor,
        "precision": precision_section(run),
        "emulation": {**run.pacer.describe(), **run.link.describe(),
                      "time_base": run.time_base, "time_scale": run.scale,
                      "precision": run.model_precision(), "device_model": device_model(run)},
        "network": config_mod.to_container(run.cfg.network),
        "strategy": run.trainer and run.trainer.strategy.describe(),
        "env": files.allowed_env(),
        "start_time": run.started,
        "end_time": None if status == "running" else _dt.datetime.now().astimezone().isoformat(),
    }
    if error:
        meta["error"] = error
    files.write_json_atomic(run.run_dir / "metadata.json", meta)


def device_model(run) -> list[dict]:
    """The device model's defaults and their sources for every device of this run."""
    names = sorted({r["emulated_device"] or r["device"] for r in run.ranks})
    stack = device_times.stack(run.cfg)
    return [devices.describe_defaults(n, run.model_precision(), stack) for n in names if lookup(n)]


def precision_section(run) -> dict:
    """What the ranks computed in, what the device model timed, and how (metadata, summary)."""
    return {"requested": run.cfg.train.precision, "compute": run.compute_precision,
            "device_model": run.model_precision(), "compile": bool(run.cfg.train.compile),
            "prefetch": run.trainer is not None
            and run.trainer.source is not run.trainer.batches}

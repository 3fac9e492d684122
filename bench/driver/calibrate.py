"""Time this machine before a run: start the ranks only to measure their host forward,
backward, optimizer and exchange ms (no training), and turn that into the time dilation D a
config needs here (bench.costs.dilation). `hetbench calibrate` prints it; a sweep shares it."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from bench import config as config_mod
from bench.costs import cluster, device_times, dilation, placement
from bench.driver.command import torchrun_command, worker_env
from bench.driver.launch import place_ranks, worker_overrides
from bench.results import files


def calibrate(cfg, overrides: list[str], run_dir: Path) -> dict:
    """Start the ranks only to time this machine (no training): calibration.json's contents,
    every rank's host forward, backward and optimizer ms. Raises RuntimeError if it fails."""
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides = worker_overrides(place_ranks(cfg, overrides, say=False))
    env = dict(worker_env(cfg, run_dir.name, run_dir), HETBENCH_CALIBRATE_ONLY="1")
    timeout = float(cfg.dist.timeout_s) + 300  # start-up and a few passes; a hung rank fails it
    try:
        proc = subprocess.run(torchrun_command(cfg, overrides + ["logger=none"]), env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"calibration did not finish in {timeout:.0f} s") from None
    path = run_dir / "calibration.json"
    if proc.returncode != 0 or not path.exists():
        raise RuntimeError(f"calibration failed (torchrun exit status {proc.returncode}):\n"
                           f"{(proc.stdout + proc.stderr)[-3000:]}")
    return files.read_json(path)


def needed_scale(cfg, calibration: dict) -> float:
    """The smallest D at which every rank of this config meets its device times on this machine
    (host times from a calibration of the same model, batch and world size)."""
    return dilation.config_need(device_times.rank_times(cfg), calibration["host_ms"])


def calibrate_main(overrides: list[str]) -> int:
    """`hetbench calibrate`: the D this machine needs for a config, to pin with
    emulation.time_scale=<D> across runs that must share one time base."""
    cfg = config_mod.compose(overrides)
    config_mod.validate_devices(cfg)
    if not placement.paced_here(cfg, cluster.world_size(cfg)):
        raise config_mod.ConfigError("emulation.compute", cfg.emulation.compute,
                                     "nothing is paced here (real GPUs, or compute off), so there "
                                     "is no time dilation to calibrate; emulate on CPU ranks")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = calibrate(cfg, overrides, Path(tmp) / "calibration")
        except RuntimeError as err:
            print(f"hetbench calibrate: error: {err}", file=sys.stderr)
            return 1
    need = needed_scale(cfg, result)
    scale = max(1.0, need * cfg.emulation.reference_scale)
    for rank, host in enumerate(result["host_ms"]):
        print(f"rank {rank}: host forward {host[0]:.2f} ms, backward {host[1]:.2f} ms, "
              f"optimizer {host[2]:.2f} ms, batch + real all-reduce {host[3]:.2f} ms")
    print(f"smallest time_scale this machine can keep up with: {need:.2f}; with headroom "
          f"x{cfg.emulation.reference_scale}: emulation.time_scale={scale:.2f}")
    return 0

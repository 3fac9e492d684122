"""The driver side of `hetbench run`: compose and validate the config, make the run directory,
start torchrun on loopback, wait, and make sure the run directory tells how it ended."""
from __future__ import annotations

import datetime as _dt
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from bench import config as config_mod
from bench import interrupts, sinks


def new_run_id() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def prepare_run_dir(cfg, run_dir: Path, overrides: list[str]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(exist_ok=True)
    (hydra_dir / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))


def torchrun_command(cfg, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
            f"--nproc-per-node={config_mod.world_size(cfg)}", "--max-restarts=0",
            "-m", "bench.train", *overrides]


def worker_env(cfg, run_id: str, run_dir: Path) -> dict:
    env = dict(os.environ, HETBENCH_RUN_ID=run_id, HETBENCH_RUN_DIR=str(run_dir.resolve()))
    env.setdefault("OMP_NUM_THREADS", str(cpu_threads(cfg)))  # also silences torchrun's warning
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def cpu_threads(cfg) -> int:
    """CPU threads per rank: train.threads_per_rank, else a CPU rank's share of the cores, and 1
    for a GPU rank (torchrun's default: its host thread launches kernels; spare OpenMP threads
    would only compete with it and with the batch prefetchers)."""
    if cfg.train.threads_per_rank:
        return int(cfg.train.threads_per_rank)
    if cfg.train.device == "cuda" or (cfg.train.device == "auto" and _gpus() > 0):
        return 1
    return max(1, (os.cpu_count() or 1) // config_mod.world_size(cfg))


def _gpus() -> int:
    from bench import placement

    return placement.visible_gpus()


def launch(cfg, overrides: list[str], run_dir: Path, run_id: str, quiet: bool = False,
           command=torchrun_command, leader: bool = True) -> int:
    """Run one experiment under torchrun; returns torchrun's exit status, or EXIT_INTERRUPTED
    after a Ctrl-C / SIGTERM (bench.interrupts: every rank stops and keeps its records).
    `command(cfg, overrides)` builds the torchrun line (bench.slurm's for one node of many);
    only the leader (the first node) writes the run directory's config and status."""
    if command is torchrun_command:  # every rank here (a Slurm node's ranks place themselves)
        overrides = place_ranks(cfg, overrides)
    if leader:
        prepare_run_dir(cfg, run_dir, overrides)
    overrides = [o for o in overrides if not o.startswith(("run_id=", "sweep_id="))]
    out = subprocess.DEVNULL if quiet else None
    # Its own session: a terminal's Ctrl-C reaches this process only, which stops the ranks once.
    with interrupts.ForwardToTorchrun() as forward:
        forward.attach(subprocess.Popen(command(cfg, overrides), stdout=out, stderr=out,
                                        env=worker_env(cfg, run_id, run_dir), start_new_session=True))
        rc = forward.proc.wait()
    if forward.signum is not None:
        if leader:
            mark_status(run_dir, "interrupted", f"interrupted by {signal.Signals(forward.signum).name}")
        return interrupts.EXIT_INTERRUPTED
    if rc != 0 and leader:
        mark_failed(run_dir, f"torchrun exited with status {rc}")
    return rc


def place_ranks(cfg, overrides: list[str], say: bool = True) -> list[str]:
    """CUDA only when every rank gets a GPU of its own (bench.placement): otherwise the ranks
    emulate on CPU, the user reads one line saying so, and the workers are told (they would
    otherwise each pick CUDA and fail on a GPU that is not there)."""
    from bench import placement

    placed = placement.place(cfg.train.device, config_mod.world_size(cfg), placement.visible_gpus())
    if placed.notice is None:
        return overrides
    if say:
        print(f"hetbench: {placed.notice}", flush=True)
    cfg.train.device = "cpu"
    return [*overrides, "train.device=cpu"]


def mark_failed(run_dir: Path, reason: str) -> None:
    """A rank killed hard cannot say so itself: the driver makes the run directory tell."""
    mark_status(run_dir, "failed", reason)


def mark_status(run_dir: Path, status: str, reason: str) -> None:
    """Set status in metadata.json and summary.json (creating minimal ones if no rank could),
    keeping a rank's own error message when it wrote one."""
    for name in ("metadata.json", "summary.json"):
        path = run_dir / name
        try:
            doc = sinks.read_json(path) if path.exists() else {"run_id": run_dir.name}
        except ValueError:  # cannot happen with atomic writes; never lose the status over it
            doc = {"run_id": run_dir.name}
        if doc.get("status") != status:
            doc["status"] = status
            doc.setdefault("error", reason)
            try:
                sinks.write_json_atomic(path, doc)
            except OSError as err:  # a full disk: say so, and which run it was
                print(f"hetbench: error: could not mark {path} {status}: {err}; the run "
                      f"directory is {run_dir}", file=sys.stderr, flush=True)


def calibrate(cfg, overrides: list[str], run_dir: Path) -> dict:
    """Start the ranks only to time this machine (no training): calibration.json's contents,
    every rank's host forward, backward and optimizer ms. Raises RuntimeError if it fails."""
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides = [o for o in place_ranks(cfg, overrides, say=False)
                 if not o.startswith(("run_id=", "sweep_id="))]
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
    return sinks.read_json(path)


def needed_scale(cfg, calibration: dict) -> float:
    """The smallest D at which every rank of this config meets its device times on this machine
    (host times from a calibration of the same model, batch and world size)."""
    from bench import device_times
    from bench.emulate.compute import needed_scale as rank_need

    times = device_times.rank_times(cfg)
    return max(rank_need(host, dev) for host, dev in zip(calibration["host_ms"], times))


def calibrate_main(overrides: list[str]) -> int:
    """`hetbench calibrate`: the D this machine needs for a config, to pin with
    emulation.time_scale=<D> across runs that must share one time base."""
    from bench.sweep import paces

    cfg = config_mod.compose(overrides)
    config_mod.validate_devices(cfg)
    if not paces(cfg):
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


def run_one(overrides: list[str]) -> int:
    cfg = config_mod.compose(overrides)  # raises ConfigError before any process starts
    config_mod.validate_devices(cfg)
    run_id = cfg.run_id or new_run_id()
    run_dir = Path(cfg.out_root) / run_id
    print(f"hetbench: run {run_id}: {config_mod.world_size(cfg)} ranks "
          f"({cfg.cluster.name} over {cfg.network.name}), {cfg.train.steps} steps -> {run_dir}",
          flush=True)
    try:
        rc = launch(cfg, overrides, run_dir, run_id)
    except OSError as err:  # the run directory could not be made or written: nothing started
        print(f"hetbench: error: cannot write the run directory {run_dir}: {err}; free space "
              "there or set out_root= to a disk with room", file=sys.stderr, flush=True)
        return 1
    status = {0: "ok", interrupts.EXIT_INTERRUPTED: "interrupted"}.get(
        rc, f"FAILED (torchrun exit status {rc})")
    print(f"hetbench: run {status}; results in {run_dir}\n"
          f"hetbench: make the report with: hetbench report {run_dir}", flush=True)
    return rc if rc in (0, interrupts.EXIT_INTERRUPTED) else 1

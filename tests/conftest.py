"""Shared helpers: run hetbench the way users do (the installed console script) and read
run directories back."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.results import timebase
from bench.results.files import read_json  # noqa: F401 (tests import them here)
from bench.results.outroot import run_dirs
from bench.results.ranklog import read_rank_logs as read_host_records  # noqa: F401

HETBENCH = str(Path(sys.executable).parent / "hetbench")

# Small, fast defaults for multi-process tests: the tiny model, short sequences.
# experiment=none: the tiny model timed as itself, not the default experiment's GPT-2 workload.
FAST = ["experiment=none", "train.micro_batch=2", "train.seq_len=32", "logger=none"]


def run_hetbench(out_root: Path, *overrides: str, timeout: float = 300) -> tuple[int, Path, str]:
    """`hetbench run` in a subprocess; returns (exit status, run dir, combined output)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    mine = {o.split("=", 1)[0] for o in overrides}
    defaults = [o for o in FAST if o.split("=", 1)[0] not in mine]
    proc = subprocess.run([HETBENCH, "run", f"out_root={out_root}", *defaults, *overrides],
                          capture_output=True, text=True, timeout=timeout, env=env)
    dirs = run_dirs(out_root)  # never out_root/latest, the link to the newest
    return proc.returncode, (dirs[-1] if dirs else None), proc.stdout + proc.stderr


def kept_records(run_dir: Path) -> list[dict]:
    """read_records less the steps in which some host lagged: what a run's statistics use
    (emulation.lagged_steps=exclude, the default; bench.emulate.lag)."""
    return [r for r in read_records(run_dir) if not r.get("lagged")]


def read_records(run_dir: Path) -> list[dict]:
    """A run's step records in the time users read: device ms for an emulated run (host / D)."""
    run_dir = Path(run_dir)
    doc = {}
    for name in ("summary.json", "metadata.json"):
        if (run_dir / name).exists() and timebase.scale_of(read_json(run_dir / name)) != 1.0:
            doc = read_json(run_dir / name)
            break
    return timebase.to_device(read_host_records(run_dir), timebase.scale_of(doc))


@pytest.fixture
def out_root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


# The default cluster and link (mixed4 over campus) with the tiny model timed as itself
# (experiment=none, in FAST), reference_scale 1.25, shorter:
# shared by the device-time and predictor tests, which read the same run.
DEFAULT_SHORT = ["train.seq_len=64", "train.steps=60", "train.warmup_steps=10"]


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> tuple[Path, str]:
    """(run dir, console output) of the default run, shortened (DEFAULT_SHORT)."""
    rc, run_dir, output = run_hetbench(tmp_path_factory.mktemp("default_run"), *DEFAULT_SHORT)
    assert rc == 0, output
    return run_dir, output


# ---------------------------------------------------------------------------------------------
# One sweep through Hydra's submitit_local launcher, shared by the launcher and W&B tests: two
# points (0 and 20 ms between two sites), each a submitit job that logs one offline W&B run.

SUBMITIT_POINTS = ("000_latency_ms=0", "001_latency_ms=20")


def submitit_sweep_args(out_root: Path) -> list[str]:
    return ["run", "-m", "experiment=none", "network.inter_site.latency_ms=0,20",
            "hydra/launcher=submitit_local",
            "cluster.groups=[{device:H100,count:1,site:a},{device:H100,count:1,site:b}]",
            "train.steps=16", "train.warmup_steps=4", "train.log_every=4", "train.micro_batch=2",
            "train.seq_len=32", "emulation.compute=off", "logger.wandb.mode=offline",
            "sweep_id=sub", f"out_root={out_root}"]


def run_in(cwd: Path, args: list[str]) -> subprocess.CompletedProcess:
    """`python -m bench.cli ARGS` from `cwd`, with no W&B settings of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True,
                          text=True, timeout=240, cwd=cwd, env=dict(env, PYTHONUNBUFFERED="1"))


@pytest.fixture(scope="session")
def submitit_sweep(tmp_path_factory):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher",
                        reason="hydra-submitit-launcher: pip install 'hetbench[cluster]'")
    cwd = tmp_path_factory.mktemp("submitit")
    proc = run_in(cwd, submitit_sweep_args(cwd / "runs"))
    return proc, cwd / "runs" / "sub"

"""A one-node Slurm cluster for tests (scripts/slurm_local.sh): real munged, slurmctld and
slurmd, their state and config in a temp dir, stopped on teardown. Any test can use it:

    from slurm_local import slurm_cluster  # noqa: F401 (the fixture)

    def test_x(slurm_cluster):  # slurm_cluster: the environment to submit with (SLURM_CONF)
        subprocess.run(["sbatch", "--wait", ...], env=slurm_cluster)
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "slurm_local.sh"
TOOLS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "srun", "sinfo", "scontrol")


def missing_reason() -> str | None:
    """Why a local Slurm cannot start here, or None."""
    if os.geteuid() != 0:
        return "a local Slurm needs root (slurmd starts jobs as their user)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"Slurm not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge"
    return None


@pytest.fixture
def slurm_cluster(tmp_path):
    """Start the cluster, yield the environment to submit jobs with, stop every daemon."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    state = tmp_path / "slurm"
    # The jobs find torchrun and python of this venv: sbatch exports the submitter's PATH.
    env = dict(os.environ, SLURM_CONF=str(state / "slurm.conf"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    try:
        start = subprocess.run([str(SCRIPT), "start", str(state)], timeout=60,
                               capture_output=True, text=True)
        if start.returncode != 0:
            pytest.fail(f"local Slurm did not start (logs in {state}): {start.stderr}")
        yield env
    finally:  # also after a failed start: whatever did start must not outlive the test
        subprocess.run([str(SCRIPT), "stop", str(state)], timeout=60, check=False)

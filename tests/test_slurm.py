"""launch/slurm.sbatch on a real one-node Slurm (munged, slurmctld, slurmd started by the
fixture): sbatch runs a 2-rank CPU hetbench job to a completed run directory."""
from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import read_json
from slurm_local import slurm_cluster  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[1]
JOB = ["experiment=none", "cluster=h100x2", "train.device=cpu", "logger=none", "train.steps=12",
       "train.warmup_steps=2", "train.micro_batch=2", "train.seq_len=32"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sbatch_runs_two_cpu_ranks_to_a_completed_run(slurm_cluster, tmp_path):
    env = dict(slurm_cluster, HETBENCH_NPROC_PER_NODE="2", HETBENCH_RDZV_PORT=str(_free_port()))
    out = tmp_path / "runs"
    job = subprocess.run(["sbatch", "--wait", "--nodes=1", f"--output={tmp_path}/job.out",
                          "launch/slurm.sbatch", *JOB, f"out_root={out}"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    log = (tmp_path / "job.out").read_text() if (tmp_path / "job.out").exists() else ""
    assert job.returncode == 0, job.stdout + job.stderr + log
    job_id = re.search(r"Submitted batch job (\d+)", job.stdout).group(1)
    run_dir = out / f"slurm-{job_id}"  # the script's default run id: every rank agrees on it
    summary, meta = read_json(run_dir / "summary.json"), read_json(run_dir / "metadata.json")
    assert summary["status"] == "ok" and summary["world_size"] == 2
    assert [r["rank"] for r in summary["ranks"]] == [0, 1]
    lagged = summary["emulation"].get("lagged_steps", {}).get("count", 0)  # a busy host's
    assert summary["steps_measured"] + lagged == 10  # steps, left out of statistics
    assert meta["env"]["SLURM_JOB_ID"] == job_id  # the ranks ran inside the Slurm job
    assert sorted(p.name for p in (run_dir / "ranks").iterdir()) == \
        ["rank_00000.jsonl", "rank_00001.jsonl"]


def test_sbatch_without_a_rank_count_says_how_to_give_one(tmp_path):
    """No GPUs and no HETBENCH_NPROC_PER_NODE: the script stops before torchrun, naming the fix
    (run as a plain script: the check reads only the environment)."""
    env = {"PATH": "/usr/bin:/bin", "SLURM_JOB_NODELIST": "n1", "SLURM_NNODES": "1"}
    proc = subprocess.run(["bash", str(REPO / "launch/slurm.sbatch")], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "HETBENCH_NPROC_PER_NODE=N" in proc.stderr

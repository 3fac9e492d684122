"""Slurm across two nodes for real (tests/slurm_two_nodes.py: two slurmd in two network
namespaces joined by a veth, slurmctld on the first): launch/slurm.sbatch with --nodes=2, and a
hydra/launcher=slurm sweep point with hydra.launcher.nodes=2. Each runs one CPU rank per node;
the run must name both hosts and have met at the first node of Slurm's node list for the job."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from conftest import HETBENCH, read_json
from netns_hosts import two_hosts  # noqa: F401 (fixture under slurm_two_nodes)
from slurm_two_nodes import PARTITION, slurm_two_nodes  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[1]
# One rank a node. Both "nodes" share this machine's cores: one thread a rank, not all of them.
JOB = ["experiment=none", "cluster=h100x2", "train.device=cpu", "emulation.compute=off", "logger=none",
       "train.steps=6", "train.warmup_steps=2", "train.micro_batch=2", "train.seq_len=32",
       "train.threads_per_rank=1"]


def _check_ran_on_both_nodes(slurm, run_dir: Path, job_id: str, port: int) -> dict:
    """The run is ok with one rank on each node, and metadata.json says where the ranks met:
    the first node of the job's node list (expanded by Slurm), at `port`."""
    summary, meta = read_json(run_dir / "summary.json"), read_json(run_dir / "metadata.json")
    assert summary["status"] == "ok" and summary["world_size"] == 2
    assert summary["steps_measured"] == 4
    assert meta["hosts"] == slurm.nodes
    assert sorted(r["host"] for r in meta["ranks"]) == slurm.nodes
    job = slurm.job(job_id)
    assert (job["JobState"], job["ExitCode"], job["NumNodes"]) == ("COMPLETED", "0:0", "2")
    # The ranks saw Slurm's own node list: bracketed, as multi-node code must parse it.
    assert meta["env"]["SLURM_JOB_NODELIST"] == job["NodeList"] == f"{slurm.hosts.prefix}n[1-2]"
    assert (meta["env"]["SLURM_JOB_ID"], meta["env"]["SLURM_NNODES"]) == (job_id, "2")
    first = slurm.hostnames(job["NodeList"])[0]
    assert meta["env"]["HETBENCH_RDZV_ENDPOINT"] == f"{first}:{port}"
    return meta


@pytest.mark.slow
@pytest.mark.heavy
def test_sbatch_and_a_slurm_sweep_each_run_on_both_nodes(slurm_two_nodes, tmp_path):
    """Both at once (each job takes one CPU of each node): the test's wall time is the longer."""
    slurm, out, sweep_dir = slurm_two_nodes, tmp_path / "runs", tmp_path / "runs" / "two"
    started = time.monotonic()
    batch_id = slurm.submit(["--nodes=2", f"--output={tmp_path}/job.out",
                             str(REPO / "launch/slurm.sbatch"), *JOB, f"out_root={out}"],
                            cwd=REPO, env=dict(slurm.env, HETBENCH_NPROC_PER_NODE="1"))
    proc = slurm.run([HETBENCH, "run", "-m", "train.seed=0", "hydra/launcher=slurm",
                      "hydra.launcher.nodes=2", "hydra.launcher.gpus_per_node=null",
                      "hydra.launcher.cpus_per_task=1", f"hydra.launcher.partition={PARTITION}",
                      "hydra.launcher.timeout_min=5", *JOB, "sweep_id=two",
                      f"out_root={out}"],
                     cwd=tmp_path, env=dict(slurm.env, PYTHONUNBUFFERED="1"), timeout=240)
    print(f"hetbench run -m on 2 nodes: {time.monotonic() - started:.1f} s")
    job = slurm.wait(batch_id, timeout=240 - (time.monotonic() - started))
    print(f"sbatch --nodes=2: {time.monotonic() - started:.1f} s")
    log = (tmp_path / "job.out").read_text() if (tmp_path / "job.out").exists() else ""
    assert (job["JobState"], job["ExitCode"]) == ("COMPLETED", "0:0"), f"{job}\n{log[-4000:]}"
    _check_ran_on_both_nodes(slurm, out / f"slurm-{batch_id}", batch_id, 29500)  # default port

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (row,) = read_json(sweep_dir / "sweep.json")["points"]
    assert (row["status"], row["reused"]) == ("ok", False)
    run_dir = sweep_dir / row["run_dir"]
    job_id = read_json(run_dir / "metadata.json")["env"]["SLURM_JOB_ID"]
    # bench.sweeps.slurm's port: 29500 + job id mod 1000 (two points may share a first node).
    _check_ran_on_both_nodes(slurm, run_dir, job_id, 29500 + int(job_id) % 1000)
    # submitit ran the point's job once on each node; node 0, the leader, is the first host.
    logs = sorted((sweep_dir / ".submitit" / job_id).glob(f"{job_id}_*_log.out"))
    assert [re.search(r"hostname=(\S+), .* node=(\d)\(2\)", p.read_text()).groups()
            for p in logs] == [(slurm.nodes[0], "0"), (slurm.nodes[1], "1")]

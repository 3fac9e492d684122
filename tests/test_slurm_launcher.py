"""`hetbench run -m ... hydra/launcher=slurm` against a real one-node Slurm (munged, slurmctld,
slurmd started by the fixture): every point is a job of a Slurm job array that submitit
submits with sbatch; each job starts one torchrun agent of 2 CPU ranks (bench.sweeps.slurm)."""
from __future__ import annotations

import random
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import HETBENCH, read_json
from slurm_local import slurm_cluster  # noqa: F401 (fixture)

pytest.importorskip("hydra_plugins.hydra_submitit_launcher",
                    reason="hydra-submitit-launcher: pip install 'hetbench[cluster]'")

POINTS = ("000_latency_ms=0", "001_latency_ms=20")


def _port_base() -> int:
    """A base for HETBENCH_RDZV_PORT whose next ports are free: the local cluster numbers its
    jobs from 1, so every test cluster on this machine would otherwise rendezvous at 29501..."""
    for _ in range(50):
        base = random.randrange(20000, 30000)
        try:
            for port in range(base, base + 8):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no 8 free consecutive ports in 20000-30000")


def _partition(env: dict) -> str:
    conf = Path(env["SLURM_CONF"]).read_text()
    return re.search(r"^PartitionName=(\S+)", conf, re.M).group(1)


def _jobs(env: dict, array_id: str) -> dict[str, dict]:
    """`scontrol show job` of an array: {JobId: fields} (completed jobs stay listed for
    MinJobAge, 300 s: this cluster has no accounting database for sacct)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", array_id], env=env, check=True,
                         capture_output=True, text=True, timeout=30).stdout
    jobs = [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in out.splitlines()]
    return {j["JobId"]: j for j in jobs}


@pytest.mark.slow
def test_a_sweep_runs_each_point_as_a_slurm_job(slurm_cluster, tmp_path):
    env = dict(slurm_cluster, PYTHONUNBUFFERED="1", HETBENCH_RDZV_PORT=str(_port_base()))
    args = [HETBENCH, "run", "-m", "experiment=none", "network.inter_site.latency_ms=0,20", "hydra/launcher=slurm",
            "hydra.launcher.nodes=1", "hydra.launcher.gpus_per_node=null",
            "hydra.launcher.cpus_per_task=1",  # 1 of the node's CPUs each: both points at once
            f"hydra.launcher.partition={_partition(env)}", "hydra.launcher.timeout_min=5",
            "cluster.groups=[{device:H100,count:1,site:a},{device:H100,count:1,site:b}]",
            "train.device=cpu", "emulation.compute=off", "logger=none", "train.steps=12",
            "train.warmup_steps=2", "train.log_every=4", "train.micro_batch=2",
            "train.seq_len=32", "sweep_id=sl", f"out_root={tmp_path / 'runs'}"]
    started = time.monotonic()
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)
    print(f"slurm sweep: {time.monotonic() - started:.1f} s")
    sweep_dir = tmp_path / "runs" / "sl"
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = read_json(sweep_dir / "sweep.json")["points"]
    assert [(r["point"], r["status"], r["reused"]) for r in rows] == \
        [(POINTS[0], "ok", False), (POINTS[1], "ok", False)]
    assert (sweep_dir / "sweep.csv").read_text().count("\n") == 3  # header + 2 points

    job_ids = []
    for point in POINTS:
        summary, meta = read_json(sweep_dir / point / "summary.json"), \
            read_json(sweep_dir / point / "metadata.json")
        assert summary["status"] == "ok" and summary["world_size"] == 2
        assert summary["steps_measured"] == 10
        assert meta["env"]["SLURM_NNODES"] == "1"  # the ranks ran inside a Slurm job
        job_ids.append(meta["env"]["SLURM_JOB_ID"])
    assert len(set(job_ids)) == 2  # one job per point

    # submitit's job array (one folder per job under .submitit/) is what Slurm ran and finished.
    (array_id,) = {m.group(1) for p in (sweep_dir / ".submitit").iterdir()
                   if (m := re.fullmatch(r"(\d+)_\d+", p.name))}
    jobs = _jobs(env, array_id)
    assert sorted(jobs) == sorted(job_ids)
    for job_id, point in zip(job_ids, POINTS):
        job = jobs[job_id]
        assert (job["ArrayJobId"], job["ArrayTaskId"]) == (array_id, str(int(point[:3])))
        assert (job["JobState"], job["ExitCode"], job["NumNodes"]) == ("COMPLETED", "0:0", "1")
        assert job["Partition"] == _partition(env)
        log = next((sweep_dir / ".submitit").glob(f"{array_id}_{job['ArrayTaskId']}/*_log.out"))
        assert re.search(rf"point \d of 2 {re.escape(point)}: ok in", log.read_text())


def test_the_slurm_preset_refuses_gpus_that_do_not_match_the_ranks(tmp_path):
    """Checked before anything is submitted (no Slurm needed): 2 ranks on one node with the
    preset's 8 GPUs per node."""
    proc = subprocess.run([HETBENCH, "run", "-m", "train.seed=0,1", "hydra/launcher=slurm",
                           "cluster=h100x2", "sweep_id=gpus", f"out_root={tmp_path}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "hydra.launcher.gpus_per_node=8" in proc.stderr and "null for CPU nodes" in proc.stderr
    assert not (tmp_path / "gpus").exists()

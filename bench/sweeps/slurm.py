"""One sweep point on a Slurm allocation of several nodes (hydra/launcher=slurm, submitit).

submitit starts one task per node (tasks_per_node=1); each runs the same Hydra job, which
starts one torchrun agent on its node:

  torchrun --nnodes=$SLURM_NNODES --node-rank=$SLURM_NODEID --nproc-per-node=W/nnodes
           --rdzv-backend=c10d --rdzv-endpoint=<first node of $SLURM_JOB_NODELIST>:<port>
           --rdzv-id=$SLURM_JOB_ID -m bench.train ...

The first node hosts the rendezvous and is the leader: it alone writes the run directory's
config, status and headline and the sweep table's row (the ranks' rank 0 writes the summary,
as in every run). The port is 29500 (or $HETBENCH_RDZV_PORT, as for launch/slurm.sbatch) + job
id mod 1000, so that two points whose jobs share a first node do not meet at one endpoint.
The ranks get that endpoint as HETBENCH_RDZV_ENDPOINT (metadata.json records it with
SLURM_JOB_NODELIST: where the nodes met), as under launch/slurm.sbatch.

Before anything is submitted, `check_allocation` holds the preset to what the ranks need: the
world size splits evenly over `nodes`, and `gpus_per_node` is one GPU per rank, or null for CPU
nodes (ranks per node = world size / nodes either way).
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Callable, Mapping

from bench.costs import cluster
from bench.driver import command
from bench.errors import ConfigError

NEEDED = ("SLURM_JOB_ID", "SLURM_NNODES", "SLURM_NODEID", "SLURM_JOB_NODELIST")


@dataclass
class Node:
    leader: bool
    command: Callable  # (cfg, overrides) -> the torchrun command line
    nodes: int = 1  # the job's nodes: this one runs world // nodes of the ranks
    env: Mapping[str, str] = field(default_factory=dict)  # for this node's torchrun and ranks

    @property
    def local(self) -> bool:
        """Every rank runs on this machine (not one node of a Slurm job)."""
        return self.command is command.torchrun_command


def node_for_job() -> Node:
    """This job's place, from Hydra's launcher and the environment."""
    from hydra.core.hydra_config import HydraConfig

    return node_for(str(HydraConfig.get().launcher.get("_target_", "")), dict(os.environ))


def node_for(launcher_target: str, env: Mapping[str, str]) -> Node:
    """The whole job on this machine, or one node of a Slurm job (the first one leads)."""
    if "SlurmLauncher" not in launcher_target:
        return Node(True, command.torchrun_command)
    return Node(int(env.get("SLURM_NODEID", "0")) == 0,
                lambda cfg, overrides: torchrun_command(cfg, overrides, env),
                int(env.get("SLURM_NNODES", "1")), rendezvous_env(env))


def rendezvous_env(env: Mapping[str, str]) -> dict:
    """HETBENCH_RDZV_ENDPOINT for the ranks, so that metadata.json says where the nodes met;
    nothing outside a Slurm job (torchrun_command then says what is missing)."""
    if any(k not in env for k in NEEDED):
        return {}
    return {"HETBENCH_RDZV_ENDPOINT": rdzv_endpoint(env)}


def rdzv_endpoint(env: Mapping[str, str]) -> str:
    """host:port of the c10d rendezvous: the job's first node, the port base + job id mod 1000."""
    base = int(env.get("HETBENCH_RDZV_PORT", "29500"))
    port = base + int(re.sub(r"\D", "", env["SLURM_JOB_ID"]) or 0) % 1000
    return f"{first_host(env['SLURM_JOB_NODELIST'])}:{port}"


def torchrun_command(cfg, overrides: list[str], env: Mapping[str, str]) -> list[str]:
    missing = [k for k in NEEDED if k not in env]
    if missing:
        raise ConfigError("hydra/launcher", "slurm", f"no {', '.join(missing)} in the environment:"
                          " this job did not start under Slurm (use submitit_local on one machine)")
    nnodes, world = int(env["SLURM_NNODES"]), cluster.world_size(cfg)
    if world % nnodes:
        raise ConfigError("cluster.groups", world, f"{world} ranks do not split evenly over "
                          f"{nnodes} nodes; set hydra.launcher.nodes to a divisor of {world}")
    return command.torchrun(world // nnodes, command.WORKER, overrides, rendezvous=[
        f"--nnodes={nnodes}", f"--node-rank={int(env['SLURM_NODEID'])}", "--rdzv-backend=c10d",
        f"--rdzv-endpoint={rdzv_endpoint(env)}", f"--rdzv-id={env['SLURM_JOB_ID']}"])


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list (`gpu[07-09,12],cpu1` -> `gpu07`,
    `rack[1-2]-node[01-04]` -> `rack1-node01`), by submitit's own parser: this path runs inside a
    job that submitit started, and Slurm's syntax (several bracket groups, zero padding) is not
    worth a second parser."""
    try:
        from submitit.slurm.slurm import _parse_node_list
    except ImportError:
        raise ConfigError("SLURM_JOB_NODELIST", nodelist, "reading a Slurm node list needs "
                          "submitit: pip install 'hetbench[cluster]'") from None
    try:
        hosts = _parse_node_list(nodelist.strip())
    except Exception:  # noqa: BLE001 - submitit raises its own parse errors and ValueErrors
        hosts = []
    if not hosts or not all(hosts):
        raise ConfigError("SLURM_JOB_NODELIST", nodelist, "not a Slurm node list")
    return hosts[0]


def is_slurm(launcher) -> bool:
    """Whether Hydra's launcher config (the `hydra.launcher` node) submits to Slurm."""
    return "SlurmLauncher" in str(launcher.get("_target_", ""))


def check_allocation(launcher, worlds: list[int]) -> None:
    """Every point's ranks fit the nodes asked for: called before the first job is submitted
    (a job that cannot start would only say so in its own log, minutes later)."""
    nodes, gpus = int(launcher.nodes), launcher.get("gpus_per_node")
    for world in sorted(set(worlds)):
        if world % nodes:
            raise ConfigError("hydra.launcher.nodes", nodes, f"{world} ranks do not split evenly "
                              f"over {nodes} nodes; set it to a divisor of {world}")
        per_node = world // nodes
        if gpus is not None and int(gpus) != per_node:
            raise ConfigError("hydra.launcher.gpus_per_node", gpus, f"{world} ranks over {nodes} "
                              f"node(s) are {per_node} per node, one GPU each: set it to "
                              f"{per_node}, or to null for CPU nodes")


def check_submit_host() -> None:
    """submitit submits with sbatch and follows jobs with squeue/sacct, all found on PATH."""
    if shutil.which("sbatch") is None:
        raise ConfigError("hydra/launcher", "slurm", "sbatch is not on PATH: run the sweep where "
                          "Slurm's commands are (a login node), or use submitit_local")

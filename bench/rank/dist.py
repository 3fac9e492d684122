"""Process group from torchrun's environment, device choice, timeouts and clock offsets."""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from bench.costs import placement


@dataclass
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device
    backend: str
    host: str


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def choose_device(train_device: str, local_rank: int, local_world: int) -> torch.device:
    """bench.costs.placement's rule on this node (under a user's torchrun, as under `hetbench run`):
    CUDA only when every local rank has a GPU of its own. Raises ConfigError (exit 2) for
    train.device=cuda with too few GPUs, never a stack trace from set_device."""
    placed = placement.place(train_device, local_world, placement.visible_gpus())
    if placed.notice and local_rank == 0:
        print(f"hetbench: {placed.notice}", flush=True)
    if placed.device == "cpu":
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def set_cpu_threads(threads_per_rank, local_world_size: int) -> int:
    """train.threads_per_rank, else this rank's share of the cores (bench.costs.placement)."""
    n = threads_per_rank or placement.cpu_share(local_world_size)
    torch.set_num_threads(n)
    return n


def init(cfg) -> DistEnv:
    rank, world = int(os.environ.get("RANK", "0")), env_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    device = choose_device(cfg.train.device, local_rank, local_world)
    backend = cfg.dist.backend if cfg.dist.backend != "auto" else (
        "nccl" if device.type == "cuda" else "gloo")
    if "MASTER_ADDR" not in os.environ:  # plain `python -m bench.train`: a world of one
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    # The timeout bounds every collective: a dead or hung peer fails the run instead of hanging it.
    dist.init_process_group(backend, rank=rank, world_size=world,
                            timeout=timedelta(seconds=float(cfg.dist.timeout_s)))
    return DistEnv(rank, world, local_rank, local_world, device, backend, socket.gethostname())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def teardown(ok: bool) -> None:
    """Leave the process group. On success every rank leaves together: a rank that destroys
    its Gloo group while a peer is still using the connection can abort the peer."""
    if dist.is_available() and dist.is_initialized():
        try:
            if ok:
                dist.barrier()
            dist.destroy_process_group()
        except Exception:  # a broken group cannot always be destroyed cleanly; we are exiting
            pass


def measure_clock_offsets(env: DistEnv, rounds: int = 20) -> list[dict]:
    """Offset of every rank's monotonic clock to rank 0's, by ping-pong over the process group.

    For each rank r, rank 0 sends a ping at t0, r answers with its clock tr, rank 0 receives at
    t1; offset = (t0 + t1) / 2 - tr, uncertainty = (t1 - t0) / 2. The min-RTT round is kept.
    Returns [{rank, offset_s, uncertainty_s}] on every rank (broadcast from rank 0).
    """
    buf = torch.zeros(1, dtype=torch.float64, device=env.device)
    results = [{"rank": 0, "offset_s": 0.0, "uncertainty_s": 0.0}]
    for peer in range(1, env.world_size):
        best = None
        for _ in range(rounds):
            if env.rank == 0:
                t0 = time.monotonic()
                dist.send(buf, peer)
                dist.recv(buf, peer)  # sync point: waits for the peer's clock reading
                t1 = time.monotonic()
                sample = ((t0 + t1) / 2 - buf.item(), (t1 - t0) / 2)
                best = sample if best is None or sample[1] < best[1] else best
            elif env.rank == peer:
                dist.recv(buf, 0)
                buf.fill_(time.monotonic())
                dist.send(buf, 0)
        if env.rank == 0:
            results.append({"rank": peer, "offset_s": best[0], "uncertainty_s": best[1]})
    shared = [results if env.rank == 0 else None]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]

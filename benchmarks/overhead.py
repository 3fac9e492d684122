"""What hetbench's instrumentation costs: the same model, batch and world size through a bare
DDP loop (no hooks, no timing) and through hetbench's loop (comm hook, clocks, windowed gather,
JSONL), interleaved block by block in one torchrun job so that both see the same machine.

    python benchmarks/overhead.py [--ranks 2] [--blocks 10] [--block-steps 20] [overrides...]

On CUDA (one GPU per rank; `--ranks 1` on a one-GPU machine) both loops run on the GPU in the
precision hetbench agreed on, from the same batch source (prefetched on CUDA).

Emulation is off (no pacing, no link delay): only the harness is measured. Blocks alternate
A B, B A, A B, ... so that neither loop always runs first; each block runs 2 untimed steps
after switching loops (caches, allocator) before it times `--block-steps`. Each A B + B A pair
gives one ratio (sum of hetbench block times / sum of bare block times). Prints the pairs, and
as its last line `overhead_ratio=<x>`, the median over pairs (hetbench / bare; 1.00 = free).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTLE_STEPS = 2


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=24, help="blocks of each kind (even)")
    ap.add_argument("--block-steps", type=int, default=20)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*")
    return ap.parse_args(argv)


def launch(args) -> int:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.ranks}",
           __file__, "--worker", f"--blocks={args.blocks}", f"--block-steps={args.block_steps}",
           *args.overrides]
    import torch

    gpu = torch.cuda.is_available()  # GPU ranks: one OpenMP thread, as `hetbench run` gives them
    env = dict(os.environ, OMP_NUM_THREADS=str(1 if gpu else max(1, (os.cpu_count() or 1) // args.ranks)))
    return subprocess.call(cmd, env=env)


def worker(args) -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from bench import config as config_mod
    from bench.rank import dist as dist_mod
    from bench.rank.model import build_model
    from bench.rank.run import RankRun

    world = int(os.environ["WORLD_SIZE"])
    span = args.block_steps + SETTLE_STEPS
    total = args.blocks * span
    cfg = config_mod.compose([
        f"cluster.groups=[{{device:H100,count:{world},site:a}}]", "network=rack",
        "emulation.compute=off", "logger=none", f"train.steps={total}", "train.warmup_steps=0",
        *args.overrides])
    env = dist_mod.init(cfg)
    if env.device.type == "cpu":
        dist_mod.set_cpu_threads(cfg.train.threads_per_rank, env.local_world_size)
    with tempfile.TemporaryDirectory() as tmp:
        run = RankRun(cfg, env, Path(tmp), "overhead")
        run.setup()
        bare = Bare(cfg, run.trainer, torch, DDP, build_model)
        if env.rank == 0:
            print(f"device {env.device}, precision {run.compute_precision}", flush=True)
        times = {"bare": [], "hetbench": []}
        for block in range(args.blocks):
            settle = range(block * span, block * span + SETTLE_STEPS)
            timed = range(settle.stop, (block + 1) * span)
            for kind in (("bare", "hetbench") if block % 2 == 0 else ("hetbench", "bare")):
                loop = bare.run if kind == "bare" else run.run_steps
                loop(settle)
                dist.barrier()
                t0 = time.perf_counter()
                loop(timed)
                dist.barrier()  # sync point: the block ends when every rank is done
                times[kind].append((time.perf_counter() - t0) / args.block_steps * 1000)
        run.log.close()
        run.trainer.close()
    dist_mod.teardown(True)
    if env.rank == 0:
        report(times)


class Bare:
    """The plain DDP loop: same model, data, device, precision, optimizer and buckets; DDP's
    built-in all-reduce; one sync per step (loss.item(), as hetbench's clock has one)."""

    def __init__(self, cfg, trainer, torch, DDP, build_model):
        from bench.rank.precision import Precision
        from bench.rank.trainer import make_optimizer

        torch.manual_seed(cfg.train.seed)
        device = trainer.env.device
        model = build_model(cfg.model, trainer.language.vocab_size, cfg.train.seq_len).to(device)
        self.ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                       bucket_cap_mb=cfg.strategy.bucket_cap_mb)
        self.opt = make_optimizer(model.parameters(), cfg.train.lr)  # the same as hetbench's
        self.precision = Precision(trainer.precision.name, device.type)
        self.batches = trainer.source  # hetbench's batch source (prefetched on CUDA)

    def run(self, steps) -> None:
        for step in steps:
            x, y = self.batches.batch(step)
            with self.precision.autocast():
                loss = self.ddp(x, y)
            self.precision.backward(loss)
            self.precision.step(self.opt)
            self.opt.zero_grad(set_to_none=True)
            loss.item()


def report(times: dict) -> None:
    print(f"{'pair':>4} {'bare(ms/step)':>14} {'hetbench(ms/step)':>18} {'ratio':>7}")
    ratios = []
    bare, het = times["bare"], times["hetbench"]
    for i in range(0, len(bare) - 1, 2):
        b, h = (bare[i] + bare[i + 1]) / 2, (het[i] + het[i + 1]) / 2
        ratios.append(h / b)
        print(f"{i // 2:>4} {b:>14.3f} {h:>18.3f} {h / b:>7.4f}")
    print(f"median bare {statistics.median(times['bare']):.3f} ms/step, median hetbench "
          f"{statistics.median(times['hetbench']):.3f} ms/step, ratio of medians "
          f"{statistics.median(times['hetbench']) / statistics.median(times['bare']):.4f}")
    print(f"overhead_ratio={statistics.median(ratios):.4f}")


if __name__ == "__main__":
    parsed = parse(sys.argv[1:])
    if parsed.worker:
        worker(parsed)
    else:
        sys.exit(launch(parsed))

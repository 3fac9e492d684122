"""An independent plain DDP loop, to check hetbench's phase times against: the same model,
batch, precision and optimizer, none of hetbench's trainer, hooks or clocks.

    torchrun --standalone --nproc-per-node=1 benchmarks/plain_loop.py \
        --n-layer 8 --n-head 8 --n-embd 512 --micro-batch 16 --seq-len 256 --precision bf16

Batches are drawn and moved to the device before timing (data is not in any phase). Each step
records CUDA events at its start, after forward, after backward (DDP's all-reduce included)
and after optimizer.step() + zero_grad, then synchronises once (as hetbench does). It also
times optimizer.step() on the host (perf_counter) and on the GPU with its own pair of events
right around it. Prints one JSON object of medians over the timed steps (ms) as its last line.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in (("n-layer", 8), ("n-head", 8), ("n-embd", 512), ("micro-batch", 16),
                          ("seq-len", 256), ("vocab", 256), ("steps", 120), ("warmup", 20)):
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--precision", default="bf16", choices=("bf16", "fp16", "tf32", "fp32"))
    ap.add_argument("--compile", action="store_true")
    return ap.parse_args(argv)


def main(args) -> dict:
    import numpy as np
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from bench.rank.model import GPT
    from bench.rank.trainer import make_optimizer  # fused AdamW, as hetbench uses

    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    dist.init_process_group("nccl")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
    torch.manual_seed(0)
    model = GPT(args.vocab, args.seq_len, args.n_layer, args.n_head, args.n_embd).cuda()
    ddp = DDP(torch.compile(model) if args.compile else model, device_ids=[local])
    opt = make_optimizer(model.parameters(), 3e-3)
    rng = np.random.default_rng([0, dist.get_rank()])
    data = [torch.from_numpy(rng.integers(0, args.vocab, (args.micro_batch, args.seq_len + 1))).cuda()
            for _ in range(8)]
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16 if args.precision == "bf16" else torch.float16)
                if args.precision in ("bf16", "fp16") else contextlib.nullcontext())
    scaler = torch.amp.GradScaler("cuda") if args.precision == "fp16" else None
    rows = []
    for step in range(args.steps):
        seq = data[step % len(data)]
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(6)]
        ev[0].record()
        with autocast:
            loss = ddp(seq[:, :-1], seq[:, 1:])
        ev[1].record()
        (scaler.scale(loss) if scaler else loss).backward()
        ev[2].record()
        ev[3].record()  # right before the optimizer, as a plain timing of it would place it
        t0 = time.perf_counter()
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        host_opt = time.perf_counter() - t0
        ev[4].record()
        opt.zero_grad(set_to_none=True)
        ev[5].record()
        torch.cuda.synchronize()  # the step's one sync point
        if step >= args.warmup:
            rows.append({"fwd_ms": ev[0].elapsed_time(ev[1]), "bwd_ms": ev[1].elapsed_time(ev[2]),
                         "opt_ms": ev[2].elapsed_time(ev[5]), "opt_events_ms": ev[3].elapsed_time(ev[4]),
                         "host_opt_ms": host_opt * 1000, "step_ms": ev[0].elapsed_time(ev[5])})
    dist.destroy_process_group()
    return {key: statistics.median(r[key] for r in rows) for key in rows[0]}


if __name__ == "__main__":
    result = main(parse())
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result))

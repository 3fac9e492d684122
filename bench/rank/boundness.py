"""Is a rank bound by its GPU, or by the host that launches the GPU's kernels?

Eager PyTorch launches kernels one by one from Python. A small model's kernels finish before
the next launch arrives, so the GPU idles between them and a faster GPU gains nothing: a fleet
of mixed fast GPUs looks homogeneous. On CUDA the rank times one forward + backward twice with
CUDA events, at start:

  as it runs     the GPU idle at the start; the time includes every gap in which the GPU
                 waited for the host's next launch                                  T_run
  packed         behind a spin kernel (bench.rank.gpu_sleep) long enough for the host to queue the
                 whole pass: the GPU then runs the kernels back to back             T_gpu

  gpu_busy_share = T_gpu / T_run   (medians over passes; 1 = no launch gap)
  >= BUSY_BOUND  compute-bound: the GPU is the limit
  <  BUSY_BOUND  launch-bound: the GPU waits for its host (torch.compile, CUDA graphs or a
                 larger micro-batch help)

A host sync inside the pass (embedding backward's sort path reads a count back) makes the
packed pass wait there too, so the share errs low by the launches after it. Only CUDA events
and the stream: no profiler (whose callbacks can stay attached and slow every
later launch). An emulated rank takes the device model's regime (floor vs FLOPs,
bench.costs.devices); a CPU rank that emulates nothing has no verdict.
"""
from __future__ import annotations

import statistics

BUSY_BOUND = 0.8


def verdict(trainer, times, device_type: str) -> dict:
    if device_type == "cuda":
        busy = gpu_busy_share(trainer)
        return {"bound": "compute-bound" if busy >= BUSY_BOUND else "launch-bound",
                "gpu_busy_share": busy, "bound_source": "cuda events"}
    if times is not None and times.regime != "profile":
        return {"bound": times.regime, "gpu_busy_share": None, "bound_source": "device model"}
    return {"bound": None, "gpu_busy_share": None, "bound_source": None}


def gpu_busy_share(trainer, passes: int = 3) -> float:
    import torch

    # The batch is on the device before timing: a copy from pageable memory may wait for the
    # stream, which would hold the host behind the spin kernel instead of letting it queue.
    x, y = trainer.batches.batch(0)

    def one_pass():
        trainer.forward_backward(x, y)

    one_pass()  # warm-up: allocator, kernels (and compilation, if any)
    run, packed = [], []
    for _ in range(passes):
        torch.cuda.synchronize()  # sync point: the GPU starts idle, as after a step's sync
        run.append(_timed(torch, one_pass))
        head = max(50.0, 3 * run[-1])  # ms: longer than the host takes to queue the pass
        packed.append(_timed(torch, one_pass, lambda: trainer.gpu_sleep(head)))
    return min(1.0, statistics.median(packed) / statistics.median(run))


def _timed(torch, work, before=None) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    if before is not None:
        before()
    start.record()
    work()
    end.record()
    end.synchronize()  # sync point: set-up only
    return start.elapsed_time(end)


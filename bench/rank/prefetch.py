"""Batches drawn ahead of the step that needs them, off the critical path.

The Markov sampler is a Python loop over sequence positions (about 5 ms for 16 x 256 tokens).
On a GPU that is host time inside the step, while the GPU idles. A thread would not help: the
loop holds the GIL, and the step's own thread needs it to launch kernels (eager PyTorch at
its launch floor is host-bound). So worker processes (two per rank) draw the next `depth` steps'
batches while the current step runs; the rank pins each batch and copies it with
`non_blocking`, so the step's kernels queue behind the copy instead of the host waiting.

Same batches, same order: the worker runs the very `Batches.sequences(step)` the rank would
(numpy, seeded by (seed, rank, step)). A step asked for out of order (a benchmark that replays
steps) is drawn on the spot, and prefetching restarts from there.
"""
from __future__ import annotations

import multiprocessing as mp
import sys
from concurrent.futures import Future, ProcessPoolExecutor

import torch

_WORKER_BATCHES = None  # the worker process's copy of the rank's Batches


def _init_worker(batches) -> None:
    global _WORKER_BATCHES
    torch.set_num_threads(1)  # numpy only: leave the cores to the ranks
    _WORKER_BATCHES = batches


def _draw(step: int):
    return _WORKER_BATCHES.sequences(step)


class Prefetcher:
    """Batches' interface (`batch(step)`), with the next `depth` steps drawn in a worker."""

    def __init__(self, batches, depth: int = 4, workers: int = 2, pin: bool = True):
        self.batches, self.depth, self.pin = batches, depth, pin
        # forkserver: a fresh process, not a fork of this one (its NCCL/Gloo threads and CUDA
        # context must not be copied into a child that would then touch them). Two workers:
        # drawing 64 x 1024 tokens takes about as long as an H200's step on the small model.
        self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("forkserver"),
                                        initializer=_init_worker, initargs=(batches,))
        self.pending: dict[int, Future] = {}
        self.broken = False

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        seq = self._take(step)
        self._ahead(step)
        tokens = torch.from_numpy(seq)
        return self.batches.to_device(tokens.pin_memory() if self.pin else tokens)

    def _take(self, step: int):
        """This step's batch: the worker's, or drawn here if none was ordered (or it broke)."""
        for stale in [s for s in self.pending if s < step]:
            self.pending.pop(stale).cancel()
        future = self.pending.pop(step, None)
        if future is not None and not self.broken:
            try:
                return future.result()
            except Exception as err:  # noqa: BLE001 - a dead worker must not stop the run
                self._give_up(err)
        return self.batches.sequences(step)

    def _ahead(self, step: int) -> None:
        if self.broken:
            return
        for s in range(step + 1, step + 1 + self.depth):
            if s not in self.pending:
                try:
                    self.pending[s] = self.pool.submit(_draw, s)
                except RuntimeError as err:  # shut down or broken pool
                    return self._give_up(err)

    def _give_up(self, err: BaseException) -> None:
        print(f"hetbench: warning: batch prefetching stopped ({type(err).__name__}: {err}); "
              "drawing batches in the step from here on", file=sys.stderr, flush=True)
        self.broken = True
        self.pending.clear()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def enabled(mode: str, device_type: str) -> bool:
    """train.prefetch: auto is on for CUDA (where sampling is host time in the step) and off on
    CPU ranks (an emulated device has its batch at once; a worker would take a core)."""
    return mode == "on" or (mode == "auto" and device_type == "cuda")


def wrap(batches, mode: str, device_type: str):
    """The rank's batch source: a Prefetcher where enabled, else `batches` itself."""
    if not enabled(mode, device_type):
        return batches
    return Prefetcher(batches, pin=device_type == "cuda")

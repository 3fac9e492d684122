"""The step loop. It knows nothing of emulation: pacing and link delay plug in through a Pacer
and a Link (no-ops by default), both called from the DDP comm hook and the step boundaries.

One step, on one rank, on its own clock:
  start -> data -> (forward, pad, faults) fwd -> backward: buckets go to the comm hook; the last
  one marks `ready` -> backward returns once every bucket is all-reduced: `synced` -> optimizer
  -> end.  Everything between ready and synced is split across ranks into wait and transfer.
"""
from __future__ import annotations

import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from bench.data import Batches, build_language
from bench.faults import Faults
from bench.model import build_model
from bench.timing import make_clock


class NoPacing:
    """Real speed: no padding."""

    active = False

    def start_step(self, step: int) -> None: ...

    def pad_forward(self, t_fwd_start: float) -> float:
        return 0.0

    def pad_bucket(self, bucket_numel: int, t_bwd_start: float) -> float:
        return 0.0

    def overrun_ms(self) -> float:
        return 0.0

    def describe(self) -> dict:
        return {"compute": "off"}


class NoLink:
    """The machine's own transport only: nothing injected."""

    def start_step(self, step: int) -> None: ...

    def wrap(self, fut, bucket_index: int, nbytes: int):
        return fut

    def injected_ms(self) -> float:
        return 0.0

    def describe(self) -> dict:
        return {"network": "off"}


class CommHook:
    """DDP comm hook: pad the bucket (pacing), mark `ready`, all-reduce, add link delay."""

    def __init__(self, clock, pacer, link, world_size: int):
        self.clock, self.pacer, self.link, self.world_size = clock, pacer, link, world_size
        self.t_bwd_start = 0.0
        self.pad_s = 0.0
        self.bucket_bytes: list[int] = []  # bytes of each bucket handed to comm this step

    def start_backward(self, t_bwd_start: float) -> None:
        self.t_bwd_start, self.pad_s, self.bucket_bytes = t_bwd_start, 0.0, []

    def on_bucket(self, _state, bucket):
        tensor = bucket.buffer()
        self.pad_s += self.pacer.pad_bucket(tensor.numel(), self.t_bwd_start)
        self.clock.mark("ready")  # the last call of the step is this rank's t_ready
        index, nbytes = len(self.bucket_bytes), tensor.numel() * tensor.element_size()
        self.bucket_bytes.append(nbytes)
        tensor.div_(self.world_size)
        fut = dist.all_reduce(tensor, async_op=True).get_future()
        fut = fut.then(lambda f: f.value()[0])
        return self.link.wrap(fut, index, nbytes)


class Trainer:
    def __init__(self, cfg, env, faults=None):
        self.cfg, self.env = cfg, env
        torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
        self.language = build_language(cfg.data, cfg.train.seed)
        vocab = self.language.vocab_size
        model = build_model(cfg.model, vocab, cfg.train.seq_len).to(env.device)
        self.model = model
        self.ddp = DDP(model, device_ids=[env.device.index] if env.device.type == "cuda" else None,
                       bucket_cap_mb=cfg.strategy.bucket_cap_mb)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
        self.batches = Batches(self.language, cfg.train.seed, env.rank, cfg.train.micro_batch,
                               cfg.train.seq_len, env.device)
        self.clock = make_clock(env.device.type, env.device)
        self.pacer, self.link = NoPacing(), NoLink()
        self.faults = faults or Faults(cfg.faults, env.rank)
        self.hook = CommHook(self.clock, self.pacer, self.link, env.world_size)
        self.ddp.register_comm_hook(None, self.hook.on_bucket)
        self.offset_s = 0.0
        self.tokens_per_step = cfg.train.micro_batch * cfg.train.seq_len

    def attach(self, pacer, link) -> None:
        """Plug in emulation (or anything else shaped like NoPacing / NoLink)."""
        self.pacer = self.hook.pacer = pacer
        self.link = self.hook.link = link

    def gradient_numel(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def calibration_pass(self) -> tuple[float, float]:
        """One forward+backward without communication or an update: (fwd_s, bwd_s).

        Used to calibrate pacing. The gradients are thrown away and the optimizer is not
        stepped, so the training trajectory is the same with and without calibration.
        """
        x, y = self.batches.batch(0)
        with self.ddp.no_sync():
            t0 = time.monotonic()
            loss = self.ddp(x, y)
            self._sync()
            t1 = time.monotonic()
            loss.backward()
            self._sync()
            t2 = time.monotonic()
        self.optimizer.zero_grad(set_to_none=True)
        return t1 - t0, t2 - t1

    def _sync(self) -> None:
        if self.env.device.type == "cuda":
            torch.cuda.synchronize()  # sync point: calibration only, never in the step loop

    def step(self, step: int) -> dict:
        """Run one training step; returns this rank's record (wait/transfer filled in later)."""
        clock = self.clock
        self.pacer.start_step(step)
        self.link.start_step(step)
        clock.mark("start")
        x, y = self.batches.batch(step)
        clock.mark("data")
        t_fwd = time.monotonic()
        loss = self.ddp(x, y)
        pad_fwd = self.pacer.pad_forward(t_fwd)
        fault_ms = self.faults.before_backward(step)
        clock.mark("fwd")
        self.hook.start_backward(time.monotonic())
        loss.backward()  # the comm hook marks `ready`; returns when all buckets are reduced
        clock.mark("synced")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        clock.mark("end")
        marks = clock.resolve()  # on CUDA: the step's one synchronization
        return self._record(step, marks, loss.item(), pad_fwd + self.hook.pad_s, fault_ms)

    def _record(self, step: int, m: dict, loss: float, pad_s: float, fault_ms: float) -> dict:
        ready = m.get("ready", m["synced"])
        off = self.offset_s

        def ms(a: float, b: float) -> float:
            return (b - a) * 1000.0

        return {
            "step": step, "rank": self.env.rank, "warmup": step < self.cfg.train.warmup_steps,
            "t_start_s": m["start"] + off, "t_ready_s": ready + off,
            "t_synced_s": m["synced"] + off, "t_end_s": m["end"] + off,
            "data_ms": ms(m["start"], m["data"]), "fwd_ms": ms(m["data"], m["fwd"]),
            "bwd_ms": ms(m["fwd"], ready), "pad_ms": pad_s * 1000.0,
            "wait_ms": None, "transfer_ms": None, "injected_ms": self.link.injected_ms(),
            "opt_ms": ms(m["synced"], m["end"]), "step_ms": ms(m["start"], m["end"]),
            "tokens": self.tokens_per_step, "loss": loss,
            "fault_ms": fault_ms, "overrun_ms": self.pacer.overrun_ms(),
            "bucket_bytes": list(self.hook.bucket_bytes),
        }

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

from bench import strategies
from bench.costs.fleet import Fleet
from bench.emulate import lag
from bench.emulate.base import NoLink, NoPacing
from bench.rank import prefetch
from bench.rank.comm_hook import CommHook
from bench.rank.data import Batches, build_language
from bench.rank.faults import Faults
from bench.rank.model import build_model
from bench.rank.precision import Precision, set_tf32
from bench.rank.timing import make_clock


def make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    """AdamW, fused where this torch build has it (CPU and CUDA since torch 2.4): one kernel
    over all tensors instead of several per tensor, 4x faster on a CPU rank."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):  # no fused kernel for this device or build
        return torch.optim.AdamW(params, lr=lr)


class Trainer:
    def __init__(self, cfg, env, fleet: Fleet, faults=None, precision: str = "fp32"):
        self.cfg, self.env = cfg, env
        torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
        self.language = build_language(cfg.data, cfg.train.seed)
        vocab = self.language.vocab_size
        model = build_model(cfg.model, vocab, cfg.train.seq_len).to(env.device)
        self.model = model  # the plain module: parameters, FLOPs (DDP may wrap a compiled one)
        self.precision = Precision(precision, env.device.type)  # agreed by the fleet (worker)
        if env.device.type == "cuda":
            set_tf32(precision)
        # An emulated workload's gradient is bytes_scale x this model's: shrink the buckets by as
        # much, so the emulated wire sees the workload's buckets (and their overlap with backward).
        scale = fleet.bytes_scale
        # torch.compile inside DDP: DDP's buckets and comm hook see the compiled module's grads.
        compiled = torch.compile(model) if cfg.train.compile else model
        self.ddp = DDP(compiled, device_ids=[env.device.index] if env.device.type == "cuda" else None,
                       bucket_cap_mb=cfg.strategy.bucket_cap_mb / scale)
        self.optimizer = make_optimizer(model.parameters(), cfg.train.lr)
        self._shadow_opt = None  # calibration's copy (optimizer_pass)
        self._grad_buffer = None  # calibration's stand-in for the gradients (host_rest_pass)
        self.strategy = strategies.build(cfg.strategy, env, model, fleet)
        self.batches = Batches(self.language, cfg.train.seed, env.rank, self.strategy.micro_batch,
                               cfg.train.seq_len, env.device, offset=self.strategy.offset,
                               uniform=cfg.train.micro_batch)
        self.source = prefetch.wrap(self.batches, cfg.train.prefetch, env.device.type)
        self.clock = make_clock(env.device.type, env.device)
        self.pacer, self.link = NoPacing(), NoLink()
        self.faults = faults or Faults(cfg.faults, env.rank)
        self.gpu_sleep = None  # in-stream delays on a GPU (faults, pacing): bench.rank.gpu_sleep
        if env.device.type == "cuda":
            from bench.rank import gpu_sleep

            self.gpu_sleep = self.faults.delay = gpu_sleep.calibrate()
        self.hook = CommHook(self.clock, self.pacer, self.link, self.strategy.exchange, fleet.sites,
                             scale)
        self.ddp.register_comm_hook(None, self.hook.on_bucket)
        self.offset_s = 0.0
        # Tokens the (emulated) workload trains per step on this rank.
        self.tokens_per_step = round(self.strategy.micro_batch * cfg.train.seq_len
                                     * fleet.tokens_scale)

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
            with self.precision.autocast():
                loss = self.ddp(x, y)
            self._sync()
            t1 = time.monotonic()
            loss.backward()
            self._sync()
            t2 = time.monotonic()
        self.optimizer.zero_grad(set_to_none=True)
        return t1 - t0, t2 - t1

    def forward_backward(self, x, y) -> None:
        """One forward + backward of a batch already on the device, with nothing synchronised
        and no exchange (no_sync), the gradients thrown away: queued on the GPU for
        bench.rank.boundness to time with events."""
        with self.ddp.no_sync():
            with self.precision.autocast():
                loss = self.ddp(x, y)
            loss.backward()
        self.optimizer.zero_grad(set_to_none=True)

    def optimizer_pass(self) -> float:
        """One AdamW step on a shadow copy of the parameters (same sizes, same kernels): its
        seconds. The real optimizer and weights are untouched, so calibration changes nothing."""
        if self._shadow_opt is None:
            shadow = [p.detach().clone().requires_grad_(True) for p in self.model.parameters()]
            for p in shadow:
                p.grad = torch.randn_like(p) * 1e-3
            self._shadow_opt = make_optimizer(shadow, self.cfg.train.lr)
        self._sync()
        t0 = time.monotonic()
        self._shadow_opt.step()
        self._shadow_opt.zero_grad(set_to_none=False)
        self._sync()
        return time.monotonic() - t0

    def host_rest_pass(self) -> float:
        """Seconds of what a real step costs beyond compute and optimizer: sampling a batch and
        a real all-reduce of every gradient (this machine's own transport)."""
        if self._grad_buffer is None:
            self._grad_buffer = torch.zeros(self.gradient_numel(), device=self.env.device)
        t0 = time.monotonic()
        self.batches.batch(0)
        dist.all_reduce(self._grad_buffer)  # sync point: every rank's share has arrived
        self._sync()
        return time.monotonic() - t0

    def close(self) -> None:
        """Stop the batch prefetcher's worker (if any)."""
        if self.source is not self.batches:
            self.source.close()

    def drop_calibration_state(self) -> None:
        """The shadow optimizer and gradient stand-in cost ~5x the parameters: free them."""
        self._shadow_opt = self._grad_buffer = None

    def _sync(self) -> None:
        if self.env.device.type == "cuda":
            torch.cuda.synchronize()  # sync point: calibration only, never in the step loop

    def step(self, step: int) -> dict:
        """Run one training step; returns this rank's record (wait/transfer filled in later).
        With a timeline pacer (emulation on CPU) the marks are the emulated instants the pacer
        and the link return; otherwise they are clock reads (CUDA events on a GPU)."""
        pacer, mark = self.pacer, self._mark
        origin = pacer.start_step(step, time.monotonic())
        self.link.start_step(step)
        mark("start", origin)
        x, y = self.source.batch(step)
        mark("data", origin)  # emulated: the device has its batch at once (prefetched)
        with self.precision.autocast():
            loss = self.ddp(x, y)
        fwd_end = pacer.pad_forward()
        fault_ms = self.faults.before_backward(step)
        mark("fwd", pacer.after_fault(fault_ms / 1000.0, fwd_end))
        self.hook.start_backward()
        # The comm hook marks `ready`; backward returns when every bucket is exchanged.
        self.precision.backward(loss * self.strategy.loss_weight)
        synced = self.link.released_at() or time.monotonic()  # emulated end of the exchange
        mark("synced", synced)
        self.precision.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        opt_end = pacer.pad_optimizer(synced)
        mark("opt", opt_end)
        mark("end", self._outer_sync(step, opt_end))
        marks = self.clock.resolve()  # on CUDA: the step's one synchronization
        return self._record(step, marks, loss.item(), pacer.pad_ms() / 1000.0, fault_ms)

    def _outer_sync(self, step: int, opt_end: float) -> float:
        """localsgd / diloco: every H steps, the sync across sites after the optimizer step; its
        end is the step's end (on the timeline, the next step starts there)."""
        outer = self.strategy.outer
        if outer is None or not outer.due(step):
            return opt_end
        nbytes = self.hook.count(outer.route, outer.nbytes)
        end = self.link.blocking_exchange(opt_end if self.pacer.timeline else None, nbytes,
                                          outer.route, outer.sync)
        if self.pacer.timeline:  # like every phase: the step ends when the emulated sync does
            time.sleep(max(0.0, end - time.monotonic()))
            self.pacer.resync(end)
        return end

    def _mark(self, name: str, instant: float) -> None:
        self.clock.mark(name, at=instant if self.pacer.timeline else None)

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
            "opt_ms": ms(m["synced"], m["opt"]), "outer_ms": ms(m["opt"], m["end"]),
            "step_ms": ms(m["start"], m["end"]), "inter_site_bytes": self.hook.inter_site_bytes,
            "tokens": self.tokens_per_step, "loss": loss,
            "fault_ms": fault_ms, "overrun_ms": self.pacer.overrun_ms(),
            "lag_ms": self.pacer.lag_ms(),
            "host_lag_ms": lag.host_lag_ms(self.pacer.overrun_ms(), self.pacer.lag_ms()),
            "bucket_bytes": list(self.hook.bucket_bytes),
        }

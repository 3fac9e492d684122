"""What a strategy puts on the links in one step, as the emulator charges it (bench.strategies,
bench.rank.trainer.CommHook): per gradient bucket its bytes, route and dependent rounds, the share of
backward after which it is handed over, and the outer sync of localsgd / diloco.

Buckets (`predict.buckets`):
  emulated  what `hetbench run` of the same config buckets: DDP's buckets of the trained model
            at strategy.bucket_cap_mb shrunk by the emulated workload's bytes factor, each
            carrying that factor times its bytes (bench.rank.trainer). The default: a prediction
            says what an emulated run would measure.
  workload  DDP's buckets of the workload's own parameters at strategy.bucket_cap_mb: what a
            real cluster running the workload would send (for predictions at scale).
The two are the same without an emulated workload.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from bench.costs import buckets as buckets_mod
from bench.costs import cluster, device_times, split

MIB = 1024 * 1024


@dataclass(frozen=True)
class Transfers:
    """One step's exchange: arrays over buckets, in hand-over order."""
    nbytes: np.ndarray  # bytes on the wire per bucket
    share: np.ndarray  # cumulative share of the gradient handed over with bucket i
    route: str
    rounds: int
    kind: str  # "plain" | "compressed": which of the exchange's two it is


@dataclass(frozen=True)
class Exchange:
    name: str  # the strategy as the run reports it (bench.costs.split.label)
    plain: Transfers  # a step without compression (and every step of most strategies)
    compressed: Optional[Transfers]  # powersgd from its start step
    compress_from: int
    outer_bytes: float  # localsgd / diloco: one sync's pseudo-gradient, else 0
    outer_route: str
    sync_every: int

    def transfers(self, step: int) -> Transfers:
        if self.compressed is not None and step >= self.compress_from:
            return self.compressed
        return self.plain

    def outer_due(self, step: int) -> bool:
        return self.outer_bytes > 0 and (step + 1) % self.sync_every == 0


def build(cfg) -> Exchange:
    st = cfg.strategy
    shapes, scale = _shapes_and_scale(cfg)
    bucket_list = buckets_mod.ddp_buckets(shapes, st.bucket_cap_mb * MIB / scale)
    numel = np.array([b.numel for b in bucket_list], dtype=float)
    share = np.cumsum(numel) / numel.sum()
    raw = numel * buckets_mod.BYTES_FP32 * scale
    route = "site" if st.name in split.OUTER_SYNC else \
        "hierarchical" if st.name == "hierarchical" else "ring"
    plain = Transfers(raw / 2 if st.name == "ddp_bf16" else raw, share, route, 1, "plain")
    compressed = None
    if st.name == "powersgd":  # torch's hook: every bucket three rounds once it compresses
        sent = np.array([buckets_mod.powersgd_sent(b.shapes, st.powersgd_rank)[1]
                         for b in bucket_list], dtype=float)
        ratio = device_times.powersgd_ratio(cfg) if scale != 1.0 else 1.0
        compressed = Transfers(sent * buckets_mod.BYTES_FP32 * scale * ratio, share, "ring", 3,
                               "compressed")
    outer = float(numel.sum() * buckets_mod.BYTES_FP32 * scale) \
        if st.name in split.OUTER_SYNC else 0.0
    return Exchange(split.label(st), plain, compressed, max(2, int(st.powersgd_start_step)), outer,
                    "hierarchical", int(st.sync_every))


def _shapes_and_scale(cfg) -> tuple[list, float]:
    """(parameter shapes to bucket, bytes each of their bytes stands for): predict.buckets."""
    if cfg.predict.buckets == "workload":
        s = device_times.workload_shape(cfg)
        return buckets_mod.gpt_param_shapes(s["vocab_size"], s["seq_len"], s["n_layer"],
                                            s["n_embd"]), 1.0
    m = cfg.model
    trained = buckets_mod.gpt_param_shapes(cluster.vocab_size(cfg), cfg.train.seq_len,
                                           m.n_layer, m.n_embd)
    return trained, device_times.bytes_scale(cfg)

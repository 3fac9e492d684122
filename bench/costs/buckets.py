"""What travels in one step, pure (no torch): bench.rank.model.GPT's parameter shapes, DDP's gradient
buckets, and what torch's PowerSGD hook sends for them. The predictor uses it; tests check each
function against the real thing (DDP's own buckets, torch's compression test, the model).

DDP buckets (torch >= 2.0, after its first-iteration rebuild): gradients in the order backward
produces them, which for this model is the reverse of the parameters' registration order (the
tied embedding, used first and last, is ready last), filled greedily: a bucket closes once it
holds at least `cap` bytes. hetbench always passes bucket_cap_mb, so DDP's smaller first
bucket (1 MiB, used only when the cap is left at its default) never applies.
"""
from __future__ import annotations

from dataclasses import dataclass

Shape = tuple[int, ...]
BYTES_FP32 = 4


def gpt_param_shapes(vocab: int, seq_len: int, n_layer: int, n_embd: int) -> list[Shape]:
    """bench.rank.model.GPT(...).parameters() shapes, in registration order (the head is tied)."""
    c = n_embd
    block = [(c,), (c,), (3 * c, c), (3 * c,), (c, c), (c,), (c,), (c,),
             (4 * c, c), (4 * c,), (c, 4 * c), (c,)]
    return [(vocab, c), (seq_len, c), *block * n_layer, (c,), (c,)]


def numel(shape: Shape) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


@dataclass(frozen=True)
class Bucket:
    shapes: tuple  # the gradients it holds
    numel: int

    @property
    def nbytes(self) -> int:
        return self.numel * BYTES_FP32


def ddp_buckets(shapes: list[Shape], cap_bytes: float) -> list[Bucket]:
    """DDP's buckets, in the order they are handed to the comm hook (module docstring)."""
    out, current = [], []
    for shape in reversed(shapes):
        current.append(shape)
        if sum(numel(s) for s in current) * BYTES_FP32 >= cap_bytes:
            out.append(Bucket(tuple(current), sum(numel(s) for s in current)))
            current = []
    if current:
        out.append(Bucket(tuple(current), sum(numel(s) for s in current)))
    return out


def powersgd_sent(shapes, rank: int, min_compression_rate: float = 2.0) -> tuple[int, int]:
    """(elements, elements torch's powerSGD_hook sends) by its own rule: a tensor viewed as
    (shape[0], -1) goes as rank-r factors when n*m > (n+m)*r * min_compression_rate, 1-D
    tensors and small matrices go whole (torch's `_should_compress`)."""
    raw = sent = 0
    for shape in shapes:
        n = shape[0]
        m = numel(shape) // n if n else 0
        r = min(n, m, rank)
        full, small = n * m, (n + m) * r
        raw += full
        sent += small if full > small * min_compression_rate else full
    return raw, sent

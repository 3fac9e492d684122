"""Training data: a learnable synthetic language with an exactly known entropy floor.

The language is a seeded sparse Markov chain over `vocab_size` tokens: every state has
`branching` successors with Dirichlet-drawn probabilities. Sequences start from the chain's
stationary distribution, so each predicted token (which always has its predecessor in context)
has expected cross-entropy at least the chain's entropy rate

    H = sum_s pi(s) * H(P[s, :])        (nats/token)

and a perfect model reaches it. Each rank draws its own samples from (seed, rank, step).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class MarkovLanguage:
    """The chain as its sparse rows: each state's `successors` (V, k) and their `probs` (V, k),
    mixed with a uniform restart. The V x V matrix P = (1 - restart) * sparse + restart / V is
    never formed, so memory and time are O(V * k): a GPT-2-sized vocabulary costs megabytes."""

    def __init__(self, vocab_size: int, branching: int, seed: int):
        rng = np.random.default_rng([seed, 0x4D41524B])  # the language depends on the seed only
        k = min(branching, vocab_size)
        self.vocab_size = vocab_size
        # A small uniform restart makes the chain irreducible and aperiodic, so its stationary
        # distribution is unique. The restart is part of the language (and of its floor).
        self.restart = 0.05
        self.successors = np.stack([rng.choice(vocab_size, size=k, replace=False)
                                    for _ in range(vocab_size)])  # (V, k)
        self.probs = rng.dirichlet(np.full(k, 0.5), size=vocab_size)  # (V, k)
        self.cum = np.cumsum(self.probs, axis=1)
        self.cum[:, -1] = 1.0
        self.stationary = self._stationary()
        self.entropy_floor = float(self._entropy_rate())

    def step(self, pi: np.ndarray) -> np.ndarray:
        """pi @ P for a distribution (or any vector) pi over the states, in O(V * k)."""
        to_successors = np.bincount(self.successors.ravel(), minlength=self.vocab_size,
                                    weights=(pi[:, None] * self.probs).ravel())
        return (1 - self.restart) * to_successors + (self.restart / self.vocab_size) * pi.sum()

    def _stationary(self) -> np.ndarray:
        # Power iteration from uniform: the restart contracts every step by at least 1 - restart,
        # so an L1 change under 1e-13 arrives within a few hundred steps at any vocabulary.
        pi = np.full(self.vocab_size, 1.0 / self.vocab_size)
        for _ in range(10_000):
            nxt = self.step(pi)
            if np.abs(nxt - pi).sum() < 1e-13:
                break
            pi = nxt
        return nxt / nxt.sum()

    def prob(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """P[prev, nxt] for arrays of token pairs: the restart's share, plus the successor's."""
        prev, nxt = np.asarray(prev), np.asarray(nxt)
        on_list = self.successors[prev] == nxt[..., None]  # (..., k): at most one True per pair
        return (1 - self.restart) * (self.probs[prev] * on_list).sum(axis=-1) \
            + self.restart / self.vocab_size

    def _entropy_rate(self) -> float:
        # Row s of P holds (1 - r) * probs[s] + r / V on its k successors and r / V on the
        # V - k other tokens, so H(P[s, :]) is a sum of k terms plus one for the rest.
        k = self.successors.shape[1]
        uniform = self.restart / self.vocab_size
        on_list = (1 - self.restart) * self.probs + uniform  # > 0: the restart reaches every token
        off_list = (self.vocab_size - k) * uniform * np.log(uniform)
        row_h = -(on_list * np.log(on_list)).sum(axis=1) - off_list
        # numpy's own sum, not BLAS's dot: the same bits at any BLAS thread count (ranks differ).
        return float((self.stationary * row_h).sum())

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        """(batch, length) int64 token ids from the stationary chain."""
        out = np.empty((batch, length), dtype=np.int64)
        out[:, 0] = rng.choice(self.vocab_size, size=batch, p=self.stationary)
        u = rng.random((batch, length))
        restart = rng.random((batch, length)) < self.restart
        uniform = rng.integers(0, self.vocab_size, size=(batch, length))
        rows = np.arange(batch)
        for t in range(1, length):
            prev = out[:, t - 1]
            choice = (u[:, t, None] > self.cum[prev]).sum(axis=1)  # (batch,)
            nxt = self.successors[prev, np.minimum(choice, self.successors.shape[1] - 1)]
            out[:, t] = np.where(restart[:, t], uniform[rows, t], nxt)
        return out


class TextBytes:
    """A UTF-8 text file as a byte-level language (vocab 256); no known floor."""

    entropy_floor = None
    vocab_size = 256

    def __init__(self, path: str):
        raw = Path(path).read_bytes()
        if len(raw) < 1024:
            raise ValueError(f"data.path={path!r}: need at least 1 KiB of text")
        self.data = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        starts = rng.integers(0, len(self.data) - length + 1, size=batch)
        return np.stack([self.data[s:s + length] for s in starts])


class Batches:
    """Deterministic per-rank batches: batch(step) depends only on (seed, rank, step).

    The step's global batch is W x micro_batch sequences; rank r's uniform share is drawn from
    its own stream (seed, r, step). A rank with an uneven share (strategy.split=balanced) takes the
    global sequences [offset, offset + micro_batch) instead, drawing each uniform share it
    overlaps from that share's stream: the cluster trains on exactly the sequences a uniform
    split would, only cut differently, so the global gradient is the uniform split's."""

    def __init__(self, language, seed: int, rank: int, micro_batch: int, seq_len: int, device,
                 offset: int | None = None, uniform: int | None = None):
        self.language, self.seed, self.rank = language, seed, rank
        self.micro_batch, self.seq_len, self.device = micro_batch, seq_len, device
        self.uniform = uniform or micro_batch
        self.offset = rank * self.uniform if offset is None else offset

    def _share(self, owner: int, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, owner, step])
        return self.language.sample(rng, self.uniform, self.seq_len + 1)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.to_device(torch.from_numpy(self.sequences(step)))

    def sequences(self, step: int) -> np.ndarray:
        """This rank's (micro_batch, seq_len + 1) token ids of `step`: numpy only, so that a
        prefetching worker process can draw them (bench.rank.prefetch)."""
        first, last = self.offset, self.offset + self.micro_batch  # global sequence range
        if first % self.uniform == 0 and self.micro_batch == self.uniform:
            return self._share(first // self.uniform, step)  # the uniform split: one draw
        owners = range(first // self.uniform, (last - 1) // self.uniform + 1)
        seq = np.concatenate([self._share(u, step) for u in owners])
        start = first - owners[0] * self.uniform
        return seq[start:start + self.micro_batch]

    def to_device(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, T) and targets (B, T) on the device. From pinned memory the copy is
        asynchronous: the step's kernels queue behind it on the stream, the host does not wait."""
        seq = seq.to(self.device, non_blocking=True)
        return seq[:, :-1], seq[:, 1:]


def build_language(data_cfg, seed: int):
    if data_cfg.kind == "text":
        return TextBytes(data_cfg.path)
    return MarkovLanguage(data_cfg.vocab_size, data_cfg.branching, seed)

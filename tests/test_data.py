"""The synthetic language: its entropy floor, its transition law, its stationary start, and
deterministic per-rank batches; the same language and sequences as the dense algorithm it
replaced; a GPT-2-sized vocabulary in little memory; and the byte-level text language."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from bench.rank.data import Batches, MarkovLanguage, TextBytes


class DenseMarkov:
    """The former dense algorithm (V x V float64 matrix, dense power iteration), kept as the
    reference: the sparse MarkovLanguage must draw the same language and the same sequences."""

    def __init__(self, vocab_size: int, branching: int, seed: int):
        rng = np.random.default_rng([seed, 0x4D41524B])
        k = min(branching, vocab_size)
        self.vocab_size, self.restart = vocab_size, 0.05
        self.successors = np.stack([rng.choice(vocab_size, size=k, replace=False)
                                    for _ in range(vocab_size)])
        self.probs = rng.dirichlet(np.full(k, 0.5), size=vocab_size)
        self.cum = np.cumsum(self.probs, axis=1)
        self.cum[:, -1] = 1.0
        S = np.zeros((vocab_size, vocab_size))
        np.add.at(S, (np.arange(vocab_size)[:, None], self.successors), self.probs)
        self.P = (1 - self.restart) * S + self.restart / vocab_size
        pi = np.full(vocab_size, 1.0 / vocab_size)
        for _ in range(10_000):
            nxt = pi @ self.P
            if np.abs(nxt - pi).sum() < 1e-13:
                break
            pi = nxt
        self.stationary = nxt / nxt.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            row_h = -np.nansum(np.where(self.P > 0, self.P * np.log(self.P), 0.0), axis=1)
        self.entropy_floor = float(self.stationary @ row_h)

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        out = np.empty((batch, length), dtype=np.int64)
        out[:, 0] = rng.choice(self.vocab_size, size=batch, p=self.stationary)
        u = rng.random((batch, length))
        restart = rng.random((batch, length)) < self.restart
        uniform = rng.integers(0, self.vocab_size, size=(batch, length))
        rows = np.arange(batch)
        for t in range(1, length):
            prev = out[:, t - 1]
            choice = (u[:, t, None] > self.cum[prev]).sum(axis=1)
            nxt = self.successors[prev, np.minimum(choice, self.successors.shape[1] - 1)]
            out[:, t] = np.where(restart[:, t], uniform[rows, t], nxt)
        return out


# (vocab_size, branching, seed): the default language first; branching 1; branching > vocab.
LANGUAGES = [(256, 4, 0), (256, 4, 1), (256, 2, 3), (1000, 8, 5), (500, 1, 2), (16, 20, 4)]


@pytest.fixture(scope="module")
def lang():
    return MarkovLanguage(vocab_size=256, branching=4, seed=0)


@pytest.fixture(scope="module")
def dense():
    return DenseMarkov(vocab_size=256, branching=4, seed=0)


def all_pairs_P(lang) -> np.ndarray:
    """The V x V matrix from the sparse rows, through MarkovLanguage.prob (small V only)."""
    V = lang.vocab_size
    return lang.prob(np.repeat(np.arange(V), V), np.tile(np.arange(V), V)).reshape(V, V)


@pytest.fixture(scope="module")
def tokens(lang):
    # 2000 sequences x 500 tokens from the sampler: ~1M (prev, next) pairs.
    return lang.sample(np.random.default_rng(12345), 2000, 500)


@pytest.mark.parametrize("vocab,k,seed", LANGUAGES)
def test_same_language_as_the_dense_algorithm(vocab, k, seed):
    lang, ref = MarkovLanguage(vocab, k, seed), DenseMarkov(vocab, k, seed)
    np.testing.assert_array_equal(lang.successors, ref.successors)
    np.testing.assert_array_equal(lang.probs, ref.probs)
    np.testing.assert_array_equal(all_pairs_P(lang), ref.P)  # prob() is P, bit for bit
    pi = np.random.default_rng(seed).dirichlet(np.ones(vocab))
    np.testing.assert_allclose(lang.step(pi), pi @ ref.P, rtol=1e-13, atol=0)
    # The same fixed point by the same stopping rule: equal up to rounding, not just tolerance.
    np.testing.assert_allclose(lang.stationary, ref.stationary, rtol=1e-13, atol=0)
    assert lang.entropy_floor == pytest.approx(ref.entropy_floor, rel=1e-12, abs=0)


@pytest.mark.parametrize("vocab,k,seed", LANGUAGES)
def test_same_sequences_as_the_dense_algorithm(vocab, k, seed):
    # The draws are the dense sampler's, in its order; the start token's inverse-CDF draw reads
    # the stationary distribution, equal to ~1e-16, so only a uniform within that of a CDF
    # boundary could tell them apart. The default config's shape first: Batches' (2, 65).
    lang, ref = MarkovLanguage(vocab, k, seed), DenseMarkov(vocab, k, seed)
    for rank in range(4):
        for step in range(25):
            rng_args = [seed, rank, step]
            np.testing.assert_array_equal(lang.sample(np.random.default_rng(rng_args), 2, 65),
                                          ref.sample(np.random.default_rng(rng_args), 2, 65))
    np.testing.assert_array_equal(lang.sample(np.random.default_rng(seed), 500, 200),
                                  ref.sample(np.random.default_rng(seed), 500, 200))
    batches = [Batches(lg, seed=seed, rank=1, micro_batch=3, seq_len=32, device="cpu", offset=2,
                       uniform=2).sequences(7) for lg in (lang, ref)]
    np.testing.assert_array_equal(*batches)


def test_transition_matrix_is_stochastic_and_sparse_plus_restart(lang):
    P = all_pairs_P(lang)
    assert P.shape == (256, 256)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    floor_mass = lang.restart / lang.vocab_size
    # Off the successor list a token can only come from the uniform restart.
    for s in (0, 17, 255):
        off = np.setdiff1d(np.arange(256), lang.successors[s])
        np.testing.assert_allclose(P[s, off], floor_mass, rtol=1e-12)
        np.testing.assert_allclose(P[s, lang.successors[s]],
                                   (1 - lang.restart) * lang.probs[s] + floor_mass, rtol=1e-12)


def test_stationary_distribution_is_stationary(lang, dense):
    pi = lang.stationary
    assert pi.shape == (256,) and (pi > 0).all()
    assert pi.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(pi @ dense.P, pi, atol=1e-12)
    # Independently: the left eigenvector of P for eigenvalue 1.
    w, v = np.linalg.eig(dense.P.T)
    lead = np.real(v[:, np.argmin(np.abs(w - 1))])
    np.testing.assert_allclose(lead / lead.sum(), pi, atol=1e-9)


def test_entropy_floor_matches_sampled_cross_entropy(lang, tokens):
    prev, nxt = tokens[:, :-1].ravel(), tokens[:, 1:].ravel()
    nll = -np.log(lang.prob(prev, nxt))
    estimate = nll.mean()
    stderr = nll.std() / math.sqrt(nll.size)
    assert stderr < 0.002
    assert estimate == pytest.approx(lang.entropy_floor, rel=0.01)


def test_entropy_floor_is_within_its_mixture_bounds():
    # Each row is (1 - r) * (sparse row) + r * uniform, so its entropy lies between
    # (1 - r) H(sparse) + r log V (concavity) and H(r) + (1 - r) H(sparse) + r log V.
    for vocab, k, seed in [(256, 4, 0), (256, 2, 3), (32, 8, 1)]:
        lang = MarkovLanguage(vocab, k, seed)
        r = lang.restart
        with np.errstate(divide="ignore", invalid="ignore"):
            sparse_h = -np.where(lang.probs > 0, lang.probs * np.log(lang.probs), 0.0).sum(axis=1)
        base = (1 - r) * (lang.stationary @ sparse_h) + r * math.log(vocab)
        h_r = -(r * math.log(r) + (1 - r) * math.log(1 - r))
        assert base <= lang.entropy_floor <= base + h_r
        assert 0 < lang.entropy_floor < math.log(vocab)


def test_empirical_transitions_match_P():
    # A small vocabulary so that every cell, restart-only ones included, is well sampled.
    lang = MarkovLanguage(vocab_size=32, branching=4, seed=7)
    seq = lang.sample(np.random.default_rng(99), 1000, 800)
    counts = np.zeros((32, 32))
    np.add.at(counts, (seq[:, :-1].ravel(), seq[:, 1:].ravel()), 1)
    n_row = counts.sum(axis=1, keepdims=True)
    assert n_row.min() > 1000
    freq = counts / n_row
    P = all_pairs_P(lang)
    sigma = np.sqrt(P * (1 - P) / n_row)
    assert (np.abs(freq - P) <= 5 * sigma).all()  # every cell within 5 sigma
    # The share of jumps off the successor lists is the restart's: r * (V - k) / V.
    off = np.ones((32, 32), dtype=bool)
    off[np.arange(32)[:, None], lang.successors] = False
    assert counts[off].sum() / counts.sum() == pytest.approx(lang.restart * 28 / 32, rel=0.03)
    # Token frequencies at any position follow the stationary distribution.
    np.testing.assert_allclose(np.bincount(seq[:, 0], minlength=32) / 1000, lang.stationary, atol=0.05)
    np.testing.assert_allclose(np.bincount(seq.ravel(), minlength=32) / seq.size, lang.stationary,
                               atol=0.004)


def test_language_depends_on_seed_only():
    a, b, c = MarkovLanguage(64, 4, 5), MarkovLanguage(64, 4, 5), MarkovLanguage(64, 4, 6)
    np.testing.assert_array_equal(all_pairs_P(a), all_pairs_P(b))
    assert a.entropy_floor == b.entropy_floor
    assert not np.array_equal(all_pairs_P(a), all_pairs_P(c))


GPT2_VOCAB = 50304  # GPT-2's 50257 padded to a multiple of 64: 20 GB as a dense float64 P

# In a fresh process: the resident set after the imports (interpreter, numpy, torch), then the
# peak after building the language and drawing one training-shaped batch. Their difference
# bounds the language's own peak from above (the imports' transient peak counts against it).
# The peak is VmHWM, this process's own: ru_maxrss also keeps the peak of the memory the child
# had before exec, which under (v)fork is pytest's, however large the earlier tests left it.
MEASURE = """
import json, os, sys, time
import numpy as np
from bench.rank.data import MarkovLanguage
def peak_rss():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
with open("/proc/self/statm") as statm:
    before = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
start = time.perf_counter()
lang = MarkovLanguage(int(sys.argv[1]), 4, seed=0)
build_s = time.perf_counter() - start
seq = lang.sample(np.random.default_rng([0, 0, 0]), 8, 1025)
print(json.dumps({"build_s": build_s, "before": before,
                  "after": peak_rss(),
                  "floor": lang.entropy_floor, "max_token": int(seq.max()),
                  "stationary": lang.stationary.tobytes().hex()}))
"""


@pytest.mark.slow
def test_gpt2_vocabulary_builds_and_samples_in_little_memory(gpt2_lang):
    # One BLAS thread there, the default here: the language must not depend on it (ranks run
    # with train.threads_per_rank threads).
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", MEASURE, str(GPT2_VOCAB)], capture_output=True,
                         text=True, timeout=300, check=True, env=env)
    got = json.loads(out.stdout)
    grown = got["after"] - got["before"]
    print(f"vocab {GPT2_VOCAB}: built in {got['build_s']:.2f} s, peak RSS "
          f"{got['after'] / 2**20:.0f} MiB ({grown / 2**20:.0f} MiB over the imports' RSS)")
    assert grown < 2**28  # the language's peak: 256 MiB (its tables are ~5 MiB; dense: 20 GB)
    assert got["after"] < 2**30  # the whole process, interpreter and torch included: 1 GiB
    assert 0 < got["floor"] < math.log(GPT2_VOCAB) and got["max_token"] < GPT2_VOCAB
    assert got["floor"] == gpt2_lang.entropy_floor
    assert bytes.fromhex(got["stationary"]) == gpt2_lang.stationary.tobytes()


@pytest.fixture(scope="module")
def gpt2_lang():
    return MarkovLanguage(GPT2_VOCAB, 4, seed=0)


def test_gpt2_vocabulary_stationary_and_floor(gpt2_lang):
    # No dense reference at this size: check pi @ P = pi through the sparse step, the floor
    # against its mixture bounds, and the floor against the sampled cross-entropy.
    lang, V = gpt2_lang, GPT2_VOCAB
    pi = lang.stationary
    assert (pi > 0).all() and pi.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.abs(lang.step(pi) - pi).sum() < 1e-12
    r = lang.restart
    sparse_h = -(lang.probs * np.log(lang.probs)).sum(axis=1)
    base = (1 - r) * (pi @ sparse_h) + r * math.log(V)
    assert base <= lang.entropy_floor <= base - (r * math.log(r) + (1 - r) * math.log(1 - r))
    seq = lang.sample(np.random.default_rng(5), 400, 250)
    nll = -np.log(lang.prob(seq[:, :-1], seq[:, 1:]))
    stderr = nll.std() / math.sqrt(nll.size)
    assert stderr < 0.015
    assert abs(nll.mean() - lang.entropy_floor) < 4 * stderr


def test_batches_deterministic_per_seed_rank_step(lang):
    def make(seed, rank):
        return Batches(lang, seed=seed, rank=rank, micro_batch=4, seq_len=16, device="cpu")

    x, y = make(0, 1).batch(5)
    assert x.shape == y.shape == (4, 16) and x.dtype == y.dtype == torch.int64
    assert int(x.min()) >= 0 and int(x.max()) < 256
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
    x2, y2 = make(0, 1).batch(5)  # a fresh loader, same (seed, rank, step)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, make(0, 2).batch(5)[0])  # another rank
    assert not torch.equal(x, make(0, 1).batch(6)[0])  # another step
    assert not torch.equal(x, make(1, 1).batch(5)[0])  # another seed
    # Ranks draw different samples at every step, not just at one.
    for step in range(4):
        assert not torch.equal(make(0, 0).batch(step)[0], make(0, 3).batch(step)[0])


def test_text_bytes(tmp_path):
    text = ("the quick brown fox jumps over the lazy dog. " * 40 + "ünïcödé ✓\n").encode()
    path = tmp_path / "corpus.txt"
    path.write_bytes(text)
    data = TextBytes(str(path))
    assert data.vocab_size == 256 and data.entropy_floor is None
    assert data.data.tolist() == list(text)
    out = data.sample(np.random.default_rng(0), 8, 33)
    assert out.shape == (8, 33) and out.dtype == np.int64
    for row in out:
        assert bytes(row.astype(np.uint8).tolist()) in text  # contiguous windows of the file
    again = data.sample(np.random.default_rng(0), 8, 33)
    np.testing.assert_array_equal(out, again)
    x, y = Batches(data, seed=0, rank=0, micro_batch=3, seq_len=20, device="cpu").batch(0)
    assert x.shape == (3, 20) and torch.equal(x[:, 1:], y[:, :-1])


def test_text_bytes_rejects_short_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_bytes(b"x" * 1023)
    with pytest.raises(ValueError, match="data.path=.*1 KiB"):
        TextBytes(str(path))

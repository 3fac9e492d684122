"""The synthetic language: its entropy floor, its transition law, its stationary start, and
deterministic per-rank batches; and the byte-level text language."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.rank.data import Batches, MarkovLanguage, TextBytes


@pytest.fixture(scope="module")
def lang():
    return MarkovLanguage(vocab_size=256, branching=4, seed=0)


@pytest.fixture(scope="module")
def tokens(lang):
    # 2000 sequences x 500 tokens from the sampler: ~1M (prev, next) pairs.
    return lang.sample(np.random.default_rng(12345), 2000, 500)


def test_transition_matrix_is_stochastic_and_sparse_plus_restart(lang):
    P = lang.P
    assert P.shape == (256, 256)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    floor_mass = lang.restart / lang.vocab_size
    # Off the successor list a token can only come from the uniform restart.
    for s in (0, 17, 255):
        off = np.setdiff1d(np.arange(256), lang.successors[s])
        np.testing.assert_allclose(P[s, off], floor_mass, rtol=1e-12)
        np.testing.assert_allclose(P[s, lang.successors[s]],
                                   (1 - lang.restart) * lang.probs[s] + floor_mass, rtol=1e-12)


def test_stationary_distribution_is_stationary(lang):
    pi = lang.stationary
    assert pi.shape == (256,) and (pi > 0).all()
    assert pi.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(pi @ lang.P, pi, atol=1e-12)
    # Independently: the left eigenvector of P for eigenvalue 1.
    w, v = np.linalg.eig(lang.P.T)
    lead = np.real(v[:, np.argmin(np.abs(w - 1))])
    np.testing.assert_allclose(lead / lead.sum(), pi, atol=1e-9)


def test_entropy_floor_matches_sampled_cross_entropy(lang, tokens):
    prev, nxt = tokens[:, :-1].ravel(), tokens[:, 1:].ravel()
    nll = -np.log(lang.P[prev, nxt])
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
    sigma = np.sqrt(lang.P * (1 - lang.P) / n_row)
    assert (np.abs(freq - lang.P) <= 5 * sigma).all()  # every cell within 5 sigma
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
    np.testing.assert_array_equal(a.P, b.P)
    assert a.entropy_floor == b.entropy_floor
    assert not np.array_equal(a.P, c.P)


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

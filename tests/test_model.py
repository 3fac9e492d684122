"""The GPT: parameter counts of the presets, the FLOP formula by hand and against torch's own
counter, causality, and shapes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from omegaconf import OmegaConf
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from bench.config import config_dir
from bench.rank.model import GPT, build_model

VOCAB, SEQ = 256, 64  # data.vocab_size default, train.seq_len in configs/config.yaml


def preset(name: str):
    return OmegaConf.load(config_dir() / "model" / f"{name}.yaml")


def hand_count(V: int, T: int, L: int, C: int) -> dict:
    block = (2 * C                      # ln1
             + 3 * C * C + 3 * C        # qkv
             + C * C + C                # proj
             + 2 * C                    # ln2
             + 4 * C * C + 4 * C        # mlp up
             + 4 * C * C + C)           # mlp down
    return {"total": V * C + T * C + L * block + 2 * C,  # head tied to tok_emb: counted once
            "non_embedding": V * C + L * block + 2 * C}


@pytest.mark.parametrize("name, low, high", [("tiny", 0.7e6, 1.1e6), ("small", 24e6, 27e6)])
def test_preset_parameter_counts(name, low, high):
    cfg = preset(name)
    torch.manual_seed(0)
    model = build_model(cfg, VOCAB, SEQ)
    n = model.num_params(non_embedding=False)
    assert low <= n <= high
    expected = hand_count(VOCAB, SEQ, cfg.n_layer, cfg.n_embd)
    assert n == expected["total"]
    assert model.num_params() == expected["non_embedding"]


def test_head_is_tied_to_token_embedding():
    model = GPT(VOCAB, SEQ, 2, 2, 32)
    assert model.head.weight is model.tok_emb.weight
    assert sum(p.numel() for p in model.parameters()) == model.num_params(non_embedding=False)


@pytest.mark.parametrize("V, T, L, H, C", [(256, 64, 4, 4, 128), (100, 32, 3, 2, 48)])
def test_flops_per_token_formula_by_hand(V, T, L, H, C):
    model = GPT(V, T, L, H, C)
    N = hand_count(V, T, L, C)["non_embedding"]
    assert model.flops_per_token() == 6 * N + 6 * L * T * C


def _linear_weight_params(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def test_flops_per_token_against_torch_flop_counter():
    cfg = preset("tiny")
    torch.manual_seed(0)
    model = build_model(cfg, VOCAB, SEQ)
    B = 2
    idx = torch.randint(0, VOCAB, (B, SEQ))
    tgt = torch.randint(0, VOCAB, (B, SEQ))
    # The fused CPU attention kernel has no FLOP formula in FlopCounterMode (it would count 0);
    # the math backend runs attention as bmm's, which it does count.
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(idx, tgt).backward()
    measured = counter.get_total_flops() / (B * SEQ)
    formula = model.flops_per_token()
    assert measured == pytest.approx(formula, rel=0.15)

    # The difference, term by term:
    # - the counter sees only matmuls: 6 FLOPs per Linear weight per token (forward 2, backward 4),
    #   the tied head included; embedding lookups, biases, layer norms and GELU count 0, while 6N
    #   charges 6 per bias and norm parameter too;
    # - attention: the counter charges the full T x T score matrix (QK^T and AV, forward 4*T*C,
    #   backward 8*T*C per layer), whereas the formula charges half of it, 6*L*T*C, since under the
    #   causal mask only the lower triangle is needed.
    L, C = cfg.n_layer, cfg.n_embd
    matmul = 6 * _linear_weight_params(model)
    attention_full = 12 * L * SEQ * C
    assert measured == matmul + attention_full
    non_matmul_params = model.num_params() - _linear_weight_params(model)
    assert formula == matmul + 6 * non_matmul_params + attention_full / 2


def _logits(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    T = idx.shape[1]
    x = model.tok_emb(idx) + model.pos_emb(torch.arange(T))
    for block in model.blocks:
        x = block(x)
    return model.head(model.ln_f(x))


def test_logits_helper_reproduces_forward_loss():
    torch.manual_seed(1)
    model = GPT(VOCAB, 32, 2, 4, 64).eval()
    idx, tgt = torch.randint(0, VOCAB, (3, 32)), torch.randint(0, VOCAB, (3, 32))
    with torch.no_grad():
        logits = _logits(model, idx)
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), tgt.reshape(-1))
        assert torch.allclose(loss, model(idx, tgt), atol=1e-6)


def test_causal_mask_future_tokens_do_not_change_past_logits():
    torch.manual_seed(2)
    model = GPT(VOCAB, 32, 2, 4, 64).eval()
    # Larger weights than the init so that every position's logits depend visibly on context.
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    idx = torch.randint(0, VOCAB, (2, 32))
    t = 12
    changed = idx.clone()
    changed[:, t + 1:] = (changed[:, t + 1:] + 1 + torch.randint(0, VOCAB - 1, changed[:, t + 1:].shape)) % VOCAB
    assert (changed[:, t + 1:] != idx[:, t + 1:]).all()
    with torch.no_grad():
        a, b = _logits(model, idx), _logits(model, changed)
    assert torch.allclose(a[:, : t + 1], b[:, : t + 1], atol=1e-5)
    # Positions that see the changed tokens do change: the comparison above has power.
    assert (a[:, t + 1:] - b[:, t + 1:]).abs().amax() > 1e-2
    # And a change at t itself changes position t (its own token) but not t-1.
    one = idx.clone()
    one[:, t] = (one[:, t] + 1) % VOCAB
    with torch.no_grad():
        c = _logits(model, one)
    assert torch.allclose(a[:, :t], c[:, :t], atol=1e-5)
    assert (a[:, t] - c[:, t]).abs().amax() > 1e-2


def test_shapes_and_initial_loss():
    torch.manual_seed(3)
    model = build_model(preset("tiny"), VOCAB, SEQ)
    idx, tgt = torch.randint(0, VOCAB, (4, SEQ)), torch.randint(0, VOCAB, (4, SEQ))
    loss = model(idx, tgt)
    assert loss.shape == ()
    # Weights drawn with std 0.02 give near-uniform predictions: loss ~ log V.
    assert loss.item() == pytest.approx(math.log(VOCAB), abs=0.1)
    assert _logits(model, idx).shape == (4, SEQ, VOCAB)
    loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    # Shorter sequences than the context run too (positions 0..T-1 only).
    assert model(idx[:, :10], tgt[:, :10]).shape == ()

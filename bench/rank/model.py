"""A small GPT-style decoder (causal self-attention, MLP, layer norm), in the nanoGPT mould.

Shapes in comments: B batch, T sequence length, C = n_embd, nh = n_head, hs = C // nh, V vocab.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.costs.devices import gpt_flops_per_token


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size: int, seq_len: int, n_layer: int, n_head: int, n_embd: int):
        super().__init__()
        self.seq_len, self.n_layer, self.n_embd = seq_len, n_layer, n_embd
        self.tok_emb = nn.Embedding(vocab_size, n_embd)
        self.pos_emb = nn.Embedding(seq_len, n_embd)
        self.blocks = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying, as in GPT-2
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))  # (B, T, V)
        return F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T))

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.pos_emb.weight.numel() if non_embedding else n

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6N plus attention, PaLM (Chowdhery et al. 2022) appendix B;
        the formula lives in bench.costs.devices, which the device time model shares."""
        return gpt_flops_per_token(self.tok_emb.num_embeddings, self.seq_len, self.n_layer,
                                   self.n_embd)


def build_model(model_cfg, vocab_size: int, seq_len: int) -> GPT:
    return GPT(vocab_size, seq_len, model_cfg.n_layer, model_cfg.n_head, model_cfg.n_embd)


def describe(model: GPT) -> str:
    n = model.num_params(non_embedding=False)
    return f"GPT {model.n_layer}x{model.n_embd}, {n / 1e6:.2f}M params, " \
           f"{model.flops_per_token() / 1e6:.1f} MFLOP/token"


"""The operators of one training step of bench.rank.model.GPT, as the device model times them:
each matmul (with its M, N, K), the attention kernel (FLOPs and bytes), and the memory-bound
work (bytes moved), per phase, with the host dispatches each costs.

Two stacks run the same model with different kernels:

  eager  hetbench's own loop: every module op is its own kernel (layer norm, GELU, residual
         adds, bias-gradient sums), and under autocast every weight, bias and layer-norm output
         is cast to bf16/fp16 by a kernel of its own, forward and backward. The dispatch counts
         below are tests/test_device_model.py's live count of the model's aten ops.
  fused  a production stack (Megatron-LM, MPT/llm-foundry, llm.c): flash attention, residual add
         fused into layer norm, bias in the GEMM epilogue, bf16 activations and weights (no
         per-step casts), a fused cross-entropy that reads the logits once, a fused optimizer.
         GELU stays a kernel of its own (Megatron's bias-GELU, MPT's nn.GELU).

Bytes count what each kernel reads and writes in HBM (activations of M = micro_batch x seq_len
tokens, C = n_embd). The residual stream is fp32 in the eager stack (parameters stay fp32 under
autocast, so every residual add promotes); matmul and attention outputs are in the compute
precision. Layer-norm statistics, bias vectors and anything of size C are left out.
"""
from __future__ import annotations

from dataclasses import dataclass

STACKS = ("eager", "fused")


@dataclass(frozen=True)
class Shape:
    """One rank's model and micro-batch (micro_batch may be fractional: a balanced share)."""
    n_layer: int
    n_embd: int
    vocab: int
    seq_len: int
    micro_batch: float

    @property
    def tokens(self) -> float:
        return self.micro_batch * self.seq_len


@dataclass(frozen=True)
class Op:
    """One kernel of a phase: a matmul (m, n, k), attention (flops, nbytes) or memory-bound
    (nbytes). `dispatches` and `casts` are the host's launches for it (casts: autocast's own
    conversions, which dispatch without Python and cost the host less)."""
    name: str
    phase: str  # fwd | bwd
    kind: str  # gemm | attention | memory
    mnk: tuple = (0, 0, 0)
    flops: float = 0.0
    nbytes: float = 0.0
    dispatches: int = 1
    casts: int = 0
    count: int = 1  # how many times it runs per step (n_layer for a layer's op)


def step_ops(shape: Shape, precision: str, stack: str) -> list[Op]:
    """Every op of one forward + backward, per layer (count = n_layer) and once (head, loss)."""
    if stack not in STACKS:
        raise ValueError(f"unknown stack {stack!r}: one of {', '.join(STACKS)}")
    act = 4 if precision == "fp32" else 2
    layer = _eager_layer(shape, act) if stack == "eager" else _fused_layer(shape, act)
    rest = _eager_rest(shape, act) if stack == "eager" else _fused_rest(shape, act)
    return [Op(**{**vars(op), "count": shape.n_layer}) for op in layer] + rest


def _gemm(name: str, phase: str, m, n, k, dispatches: int = 1) -> Op:
    return Op(name, phase, "gemm", (m, n, k), flops=2.0 * m * n * k, dispatches=dispatches)


def _linear(name: str, m, n, k) -> list[Op]:
    """A linear layer (m tokens, n outputs, k inputs): forward, then backward's input gradient
    (m x k from n) and weight gradient (n x k, summed over the m tokens)."""
    return [_gemm(name, "fwd", m, n, k), _gemm(name + ".dgrad", "bwd", m, k, n),
            _gemm(name + ".wgrad", "bwd", n, k, m)]


def _attention(s: Shape, act: int) -> list[Op]:
    """Causal attention (SDPA): forward QK^T and PV, 4 B T^2 C halved by the mask (PaLM's count);
    backward 2.5x forward (FlashAttention-2 recomputes QK^T: five matmuls for two)."""
    flops = 2.0 * s.micro_batch * s.seq_len ** 2 * s.n_embd
    mc = s.tokens * s.n_embd
    return [Op("attention", "fwd", "attention", flops=flops, nbytes=4 * act * mc),
            Op("attention.bwd", "bwd", "attention", flops=2.5 * flops, nbytes=8 * act * mc)]


def _mem(name: str, phase: str, nbytes: float, dispatches: int = 1, casts: int = 0) -> Op:
    return Op(name, phase, "memory", nbytes=nbytes, dispatches=dispatches, casts=casts)


def _eager_layer(s: Shape, act: int) -> list[Op]:
    m, c, mc, r = s.tokens, s.n_embd, s.tokens * s.n_embd, 4  # r: the fp32 residual stream
    autocast = act == 2
    ops = [*_linear("qkv", m, 3 * c, c), *_linear("proj", m, c, c), *_linear("mlp.up", m, 4 * c, c),
           *_linear("mlp.down", m, c, 4 * c), *_attention(s, act),
           _mem("layer_norm", "fwd", 2 * (2 * r * mc), dispatches=2),
           _mem("residual_add", "fwd", 2 * (2 * r + act) * mc, dispatches=2),
           _mem("gelu", "fwd", 8 * act * mc),
           _mem("residual_grad_add", "bwd", 2 * 3 * r * mc, dispatches=2),
           _mem("bias_grad_sum", "bwd", 9 * act * mc, dispatches=4),
           _mem("gelu.bwd", "bwd", 12 * act * mc),
           _mem("layer_norm.bwd", "bwd", 2 * 3 * r * mc, dispatches=2),
           _mem("qkv_grad_cat", "bwd", 6 * act * mc)]
    if autocast:  # to bf16/fp16 and back: 12 C^2 weights (6 bytes each way), LN outputs, grads
        w = 12 * c * c * 6
        ops += [_mem("autocast.weights", "fwd", w, dispatches=0, casts=8),
                _mem("autocast.ln_out", "fwd", 2 * (r + act) * mc, dispatches=0, casts=2),
                _mem("autocast.weight_grads", "bwd", w, dispatches=0, casts=8),
                _mem("autocast.grads", "bwd", 4 * (r + act) * mc, dispatches=0, casts=4)]
    return ops


def _eager_rest(s: Shape, act: int) -> list[Op]:
    """Embeddings, final layer norm, tied head and cross-entropy (computed in fp32 under
    autocast), once per step."""
    m, c, v, mc, r = s.tokens, s.n_embd, s.vocab, s.tokens * s.n_embd, 4
    logits = m * v
    ops = [*_linear("head", m, v, c),
           _mem("embed", "fwd", 2 * 2 * r * mc + 3 * r * mc, dispatches=4),  # arange, 2 gathers, add
           _mem("layer_norm_f", "fwd", 2 * r * mc),
           _mem("cross_entropy", "fwd", logits * 4 * 3, dispatches=2),  # log_softmax, nll
           _mem("cross_entropy.bwd", "bwd", logits * 4 * 3, dispatches=3),  # seed, nll, softmax
           _mem("layer_norm_f.bwd", "bwd", 3 * r * mc),
           _mem("embed.bwd", "bwd", 2 * r * mc + r * c * v, dispatches=4)]  # 2 scatters, sum, add
    if act == 2:  # LN output, head weight and logits (to fp32 for the loss) and their grads
        ops += [_mem("autocast.head", "fwd", (r + act) * (mc + c * v + logits), dispatches=0,
                     casts=3),
                _mem("autocast.head.bwd", "bwd", (r + act) * (mc + c * v + logits), dispatches=0,
                     casts=3)]
    return ops


def _fused_layer(s: Shape, act: int) -> list[Op]:
    m, c, mc = s.tokens, s.n_embd, s.tokens * s.n_embd
    return [*_linear("qkv", m, 3 * c, c), *_linear("proj", m, c, c), *_linear("mlp.up", m, 4 * c, c),
            *_linear("mlp.down", m, c, 4 * c), *_attention(s, act),
            _mem("add_layer_norm", "fwd", 2 * 4 * act * mc, dispatches=2),
            _mem("gelu", "fwd", 8 * act * mc),
            _mem("add_layer_norm.bwd", "bwd", 2 * 5 * act * mc, dispatches=2),
            _mem("gelu.bwd", "bwd", 12 * act * mc)]


def _fused_rest(s: Shape, act: int) -> list[Op]:
    m, c, v, mc = s.tokens, s.n_embd, s.vocab, s.tokens * s.n_embd
    return [*_linear("head", m, v, c),
            _mem("embed", "fwd", 3 * act * mc, dispatches=1),
            _mem("layer_norm_f", "fwd", 2 * act * mc),
            _mem("cross_entropy", "fwd", m * v * act),  # reads the logits once
            _mem("cross_entropy.bwd", "bwd", 2 * m * v * act),  # reads again, writes the grad
            _mem("layer_norm_f.bwd", "bwd", 3 * act * mc),
            _mem("embed.bwd", "bwd", act * mc + 4 * c * v)]

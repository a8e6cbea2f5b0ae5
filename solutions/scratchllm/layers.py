"""Unit u05: blocks.

A Transformer is a stack of identical blocks. Each block reads the
*residual stream* x (B, T, d_model), computes something from a normalised
copy of it, and adds the result back:

    x = x + Attention(Norm1(x))        tokens exchange information
    x = x + FeedForward(Norm2(x))      each token is processed on its own

This is the *pre-norm* arrangement (GPT-2). "Attention Is All You Need" put
the norm after the addition (post-norm, x = Norm(x + Sublayer(x))), which
needs a learning-rate warmup to train deep stacks; pre-norm leaves the path
through the additions untouched, so gradients reach early layers intact.

Pieces:

    LayerNorm(x) = (x - mean) / sqrt(var + eps) * weight + bias
                   mean and var over the last dim, var biased (divide by d)
    RMSNorm(x)   = x / sqrt(mean(x^2) + eps) * weight          (no centring)
    gelu(x)      = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    FeedForward  = down(gelu(up(x)))                  nn.Linear with bias
    SwiGLU       = down(silu(gate(x)) * up(x))        nn.Linear without bias,
                   silu(z) = z * sigmoid(z)

Blocks pick their parts by name: norm="layer" | "rms", ffn="gelu" | "swiglu".
GPT-2 style is ("layer", "gelu"); LLaMA style is ("rms", "swiglu").

state_dict names (so checkpoints load between implementations):
    LayerNorm: weight, bias        RMSNorm: weight
    FeedForward: up.weight, up.bias, down.weight, down.bias
    SwiGLU: gate.weight, up.weight, down.weight
    DecoderBlock, EncoderBlock: norm1, attn, norm2, ffn
    CrossDecoderBlock: norm1, self_attn, norm2, cross_attn, norm3, ffn
(attn, self_attn and cross_attn are u04's MultiHeadAttention.)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention

if TYPE_CHECKING:
    from .embeddings import RotaryEmbedding


class LayerNorm(nn.Module):
    """Normalise over the last dim to mean 0, variance 1, then scale and shift.

    Parameters: weight (dim,) initialised to ones, bias (dim,) to zeros.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor,  # (..., dim)
                ) -> Tensor:  # (..., dim)
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class RMSNorm(nn.Module):
    """Divide by the root mean square over the last dim, then scale.

    Parameter: weight (dim,) initialised to ones. No mean is subtracted, no bias.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor,  # (..., dim)
                ) -> Tensor:  # (..., dim)
        rms = torch.sqrt((x ** 2).mean(dim=-1, keepdim=True) + self.eps)
        return x / rms * self.weight


def gelu(x: Tensor) -> Tensor:
    """GELU, tanh approximation (as in GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


class FeedForward(nn.Module):
    """The GPT-2 MLP: down(gelu(up(x))), then dropout.

    Submodules: up = nn.Linear(dim, hidden), down = nn.Linear(hidden, dim),
    both with bias.
    """

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor,  # (..., dim)
                ) -> Tensor:  # (..., dim)
        return self.dropout(self.down(gelu(self.up(x))))


class SwiGLU(nn.Module):
    """The gated MLP of PaLM and LLaMA: down(silu(gate(x)) * up(x)), then dropout.

    Submodules: gate = nn.Linear(dim, hidden), up = nn.Linear(dim, hidden),
    down = nn.Linear(hidden, dim), all without bias. `hidden` is used as
    given (LLaMA picks about 8/3 * dim to match a 4 * dim GELU MLP's size).
    """

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor,  # (..., dim)
                ) -> Tensor:  # (..., dim)
        g = self.gate(x)
        return self.dropout(self.down(g * torch.sigmoid(g) * self.up(x)))


def make_norm(norm: str, dim: int) -> nn.Module:
    """"layer" -> LayerNorm(dim), "rms" -> RMSNorm(dim); anything else is a ValueError."""
    if norm == "layer":
        return LayerNorm(dim)
    if norm == "rms":
        return RMSNorm(dim)
    raise ValueError(f"norm must be 'layer' or 'rms', got {norm!r}")


def make_ffn(ffn: str, dim: int, hidden: int, dropout: float = 0.0) -> nn.Module:
    """"gelu" -> FeedForward, "swiglu" -> SwiGLU; anything else is a ValueError."""
    if ffn == "gelu":
        return FeedForward(dim, hidden, dropout)
    if ffn == "swiglu":
        return SwiGLU(dim, hidden, dropout)
    raise ValueError(f"ffn must be 'gelu' or 'swiglu', got {ffn!r}")


def self_attention(attn: MultiHeadAttention,
                   x: Tensor,  # (B, T, d_model)
                   mask: Tensor | None = None,  # bool, broadcastable to (B, n_heads, T, T)
                   rope: RotaryEmbedding | None = None,
                   positions: Tensor | None = None,  # (T,) or (B, T) int64; None means 0 .. T-1
                   ) -> Tensor:  # (B, T, d_model)
    """attn(x, mask=mask), with RoPE applied to the queries and keys if `rope` is given.

    RoPE acts inside attention, after the heads are split and before the
    scores q.k are taken; values are not rotated.
    """
    if rope is None:
        return attn(x, mask=mask)
    if positions is None:
        positions = torch.arange(x.size(1), device=x.device)
    elif positions.dim() == 2:
        positions = positions[:, None, :]  # (B, 1, T): the same for every head
    q = rope(attn.split_heads(attn.q_proj(x)), positions)
    k = rope(attn.split_heads(attn.k_proj(x)), positions)
    v = attn.split_heads(attn.v_proj(x))
    y = scaled_dot_product_attention(q, k, v, mask=mask)
    return attn.dropout(attn.out_proj(attn.merge_heads(y)))


class DecoderBlock(nn.Module):
    """GPT's block: pre-norm causal self-attention, then a feed-forward, each added to x.

        x = x + attn(norm1(x), causal)       x = x + ffn(norm2(x))

    Submodules: norm1, attn (MultiHeadAttention(d_model, n_heads, dropout)),
    norm2, ffn (make_ffn(ffn, d_model, d_ff, dropout)). `rope`, if given, is
    a RotaryEmbedding(head_dim, ...) applied to queries and keys; it has no
    state, so it adds nothing to the state_dict.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0,
                 norm: str = "layer", ffn: str = "gelu", rope: RotaryEmbedding | None = None):
        super().__init__()
        self.norm1 = make_norm(norm, d_model)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.norm2 = make_norm(norm, d_model)
        self.ffn = make_ffn(ffn, d_model, d_ff, dropout)
        self.rope = rope

    def forward(self, x: Tensor,  # (B, T, d_model)
                positions: Tensor | None = None,  # (T,) or (B, T) int64, used by RoPE only
                ) -> Tensor:  # (B, T, d_model)
        mask = causal_mask(x.size(1)).to(x.device)
        x = x + self_attention(self.attn, self.norm1(x), mask, self.rope, positions)
        return x + self.ffn(self.norm2(x))


class EncoderBlock(nn.Module):
    """The encoder's block: pre-norm self-attention (every token sees every
    token not masked out), then a feed-forward, each added to x.

    Submodules: norm1, attn, norm2, ffn, as in DecoderBlock.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0,
                 norm: str = "layer", ffn: str = "gelu"):
        super().__init__()
        self.norm1 = make_norm(norm, d_model)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.norm2 = make_norm(norm, d_model)
        self.ffn = make_ffn(ffn, d_model, d_ff, dropout)

    def forward(self, x: Tensor,  # (B, T, d_model)
                mask: Tensor | None = None,  # bool, True = may attend; e.g. padding (B, 1, 1, T)
                ) -> Tensor:  # (B, T, d_model)
        x = x + self.attn(self.norm1(x), mask=mask)
        return x + self.ffn(self.norm2(x))


class CrossDecoderBlock(nn.Module):
    """The encoder-decoder's decoder block: causal self-attention, then
    cross-attention over the encoder's output `memory`, then a feed-forward;
    each pre-norm and added to x.

        x = x + self_attn(norm1(x), causal)
        x = x + cross_attn(norm2(x), context=memory, memory_mask)
        x = x + ffn(norm3(x))

    Queries come from the decoder, keys and values from `memory`, which is
    used as given (the encoder normalises its own output).
    Submodules: norm1, self_attn, norm2, cross_attn, norm3, ffn.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0,
                 norm: str = "layer", ffn: str = "gelu"):
        super().__init__()
        self.norm1 = make_norm(norm, d_model)
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.norm2 = make_norm(norm, d_model)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.norm3 = make_norm(norm, d_model)
        self.ffn = make_ffn(ffn, d_model, d_ff, dropout)

    def forward(self, x: Tensor,  # (B, T, d_model)
                memory: Tensor,  # (B, S, d_model), the encoder's output
                memory_mask: Tensor | None = None,  # bool, broadcastable to (B, n_heads, T, S)
                ) -> Tensor:  # (B, T, d_model)
        x = x + self.self_attn(self.norm1(x), mask=causal_mask(x.size(1)).to(x.device))
        x = x + self.cross_attn(self.norm2(x), context=memory, mask=memory_mask)
        return x + self.ffn(self.norm3(x))

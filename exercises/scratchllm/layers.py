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

Read exercises/units/u05_blocks/README.md first. Check your work with
`llmfs check u05` or `pytest exercises/tests -m u05`.
Not allowed here: torch's norms, activations and Transformer layers (see
course.toml). You build on your own u04 MultiHeadAttention.
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
        # TODO(u05): Remember eps; create weight (ones) and bias (zeros) as nn.Parameters.
        raise NotImplementedError("u05: LayerNorm.__init__")

    def forward(self, x: Tensor,  # (..., dim)
                ) -> Tensor:  # (..., dim)
        # TODO(u05): Normalise over the last dim only (keepdim=True).
        #   1. mean of x; var = mean of (x - mean)^2   (biased: divide by dim, not dim - 1)
        #   2. (x - mean) / sqrt(var + eps)            (eps inside the square root)
        #   3. * weight + bias
        raise NotImplementedError("u05: LayerNorm.forward")


class RMSNorm(nn.Module):
    """Divide by the root mean square over the last dim, then scale.

    Parameter: weight (dim,) initialised to ones. No mean is subtracted, no bias.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        # TODO(u05): Remember eps; create weight (ones) as an nn.Parameter.
        raise NotImplementedError("u05: RMSNorm.__init__")

    def forward(self, x: Tensor,  # (..., dim)
                ) -> Tensor:  # (..., dim)
        # TODO(u05): x / sqrt(mean(x^2 over the last dim) + eps) * weight.
        raise NotImplementedError("u05: RMSNorm.forward")


def gelu(x: Tensor) -> Tensor:
    """GELU, tanh approximation (as in GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    # TODO(u05): Write the formula with torch.tanh and math.sqrt.
    raise NotImplementedError("u05: gelu")


class FeedForward(nn.Module):
    """The GPT-2 MLP: down(gelu(up(x))), then dropout.

    Submodules: up = nn.Linear(dim, hidden), down = nn.Linear(hidden, dim),
    both with bias.
    """

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        # TODO(u05): Create self.up, self.down (nn.Linear with bias) and an nn.Dropout.
        raise NotImplementedError("u05: FeedForward.__init__")

    def forward(self, x: Tensor,  # (..., dim)
                ) -> Tensor:  # (..., dim)
        # TODO(u05): up, your gelu, down, dropout.
        raise NotImplementedError("u05: FeedForward.forward")


class SwiGLU(nn.Module):
    """The gated MLP of PaLM and LLaMA: down(silu(gate(x)) * up(x)), then dropout.

    Submodules: gate = nn.Linear(dim, hidden), up = nn.Linear(dim, hidden),
    down = nn.Linear(hidden, dim), all without bias. `hidden` is used as
    given (LLaMA picks about 8/3 * dim to match a 4 * dim GELU MLP's size).
    """

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        # TODO(u05): Create self.gate, self.up, self.down (nn.Linear, bias=False)
        # and an nn.Dropout.
        raise NotImplementedError("u05: SwiGLU.__init__")

    def forward(self, x: Tensor,  # (..., dim)
                ) -> Tensor:  # (..., dim)
        # TODO(u05): silu(z) = z * torch.sigmoid(z) of the *gate* branch, times
        # the up branch, then down and dropout.
        raise NotImplementedError("u05: SwiGLU.forward")


def make_norm(norm: str, dim: int) -> nn.Module:
    """"layer" -> LayerNorm(dim), "rms" -> RMSNorm(dim); anything else is a ValueError."""
    # TODO(u05): Pick the class by name (default eps).
    raise NotImplementedError("u05: make_norm")


def make_ffn(ffn: str, dim: int, hidden: int, dropout: float = 0.0) -> nn.Module:
    """"gelu" -> FeedForward, "swiglu" -> SwiGLU; anything else is a ValueError."""
    # TODO(u05): Pick the class by name.
    raise NotImplementedError("u05: make_ffn")


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
    # TODO(u05): Without rope, this is just attn(x, mask=mask). With rope,
    # redo attn's forward by hand, using its parts:
    #   1. positions: torch.arange(T) if None; (B, T) becomes (B, 1, T) so
    #      that it broadcasts over the heads.
    #   2. q, k, v = attn.split_heads(attn.q_proj(x)), ... for k_proj, v_proj
    #   3. rotate q and k (not v) with rope(..., positions)
    #   4. scaled_dot_product_attention(q, k, v, mask=mask)
    #   5. attn.merge_heads, attn.out_proj, attn.dropout
    raise NotImplementedError("u05: self_attention")


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
        # TODO(u05): Create norm1, attn, norm2, ffn (in that order: it is the
        # state_dict's order) and keep rope as self.rope.
        raise NotImplementedError("u05: DecoderBlock.__init__")

    def forward(self, x: Tensor,  # (B, T, d_model)
                positions: Tensor | None = None,  # (T,) or (B, T) int64, used by RoPE only
                ) -> Tensor:  # (B, T, d_model)
        # TODO(u05): Two residual steps, each reading a *normalised* copy of x
        # and adding its result to x itself:
        #   x = x + self_attention(self.attn, self.norm1(x), causal mask, self.rope, positions)
        #   x = x + self.ffn(self.norm2(x))
        # Build the causal mask on x's device.
        raise NotImplementedError("u05: DecoderBlock.forward")


class EncoderBlock(nn.Module):
    """The encoder's block: pre-norm self-attention (every token sees every
    token not masked out), then a feed-forward, each added to x.

    Submodules: norm1, attn, norm2, ffn, as in DecoderBlock.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0,
                 norm: str = "layer", ffn: str = "gelu"):
        super().__init__()
        # TODO(u05): Create norm1, attn, norm2, ffn as in DecoderBlock.
        raise NotImplementedError("u05: EncoderBlock.__init__")

    def forward(self, x: Tensor,  # (B, T, d_model)
                mask: Tensor | None = None,  # bool, True = may attend; e.g. padding (B, 1, 1, T)
                ) -> Tensor:  # (B, T, d_model)
        # TODO(u05): As DecoderBlock.forward, with the given mask instead of a
        # causal one (None: every token sees every token).
        raise NotImplementedError("u05: EncoderBlock.forward")


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
        # TODO(u05): Create norm1, self_attn, norm2, cross_attn, norm3, ffn, in that order.
        raise NotImplementedError("u05: CrossDecoderBlock.__init__")

    def forward(self, x: Tensor,  # (B, T, d_model)
                memory: Tensor,  # (B, S, d_model), the encoder's output
                memory_mask: Tensor | None = None,  # bool, broadcastable to (B, n_heads, T, S)
                ) -> Tensor:  # (B, T, d_model)
        # TODO(u05): Three residual steps: causal self-attention on norm1(x);
        # cross-attention with queries from norm2(x) and context=memory
        # (not normalised here), masked by memory_mask; ffn on norm3(x).
        raise NotImplementedError("u05: CrossDecoderBlock.forward")

"""Unit u03: positions.

A language model reads token ids, integers in [0, vocab_size). It turns each
id into a vector by looking it up in a table: row `id` of a learned matrix
W of shape (vocab_size, dim). That is all an embedding is.

Attention (unit u04) compares every query with every key and does not care
in which order the keys come: shuffle the tokens and each output is the same
weighted average, shuffled. Word order has to be put in by hand. Three ways:

1. Sinusoidal positions ("Attention Is All You Need", section 3.5): add to
   the token vector at position pos a fixed vector of sines and cosines,

       PE[pos, 2i]   = sin(pos / 10000^(2i/dim))
       PE[pos, 2i+1] = cos(pos / 10000^(2i/dim))        i = 0 .. dim/2 - 1

   Columns are *interleaved*: even columns are sines, odd columns cosines,
   and columns 2i and 2i+1 share one frequency.

2. Learned positions (GPT-2): a second table with one learned row per
   position 0 .. max_T - 1, added to the token vectors.

3. Rotary positions, RoPE (Su et al., "RoFormer", 2021): instead of adding
   anything to x, rotate the queries and keys inside attention. Pair up the
   dimensions of a head vector as (x[2i], x[2i+1]), the *interleaved*
   pairing of the RoFormer paper, and rotate pair i by the angle
   pos * theta^(-2i/head_dim):

       out[2i]   = x[2i] cos(a) - x[2i+1] sin(a)
       out[2i+1] = x[2i] sin(a) + x[2i+1] cos(a)       a = pos * theta^(-2i/head_dim)

   Seen as complex numbers z_i = x[2i] + j x[2i+1], this is z_i * e^(j a).
   Rotating q at position m and k at position n makes q.k depend on m - n
   only: attention sees relative positions. (GPT-NeoX and the Hugging Face
   LLaMA code pair dimension i with i + head_dim/2 instead; that is another
   convention, not this course's.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Embedding(nn.Module):
    """A lookup table: forward(ids) returns rows of `weight`.

    Parameter: weight, (num_embeddings, dim), initialised N(0, 1) like
    nn.Embedding. ids may have any shape; the output has shape ids.shape + (dim,).
    """

    def __init__(self, num_embeddings: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_embeddings, dim))

    def forward(self, ids: Tensor,  # (...) int64
                ) -> Tensor:  # (..., dim)
        return self.weight[ids]


def sinusoidal_positions(T: int, dim: int) -> Tensor:  # (T, dim) float32
    """The fixed positional encodings of "Attention Is All You Need" (dim even).

    PE[pos, 2i] = sin(pos / 10000^(2i/dim)), PE[pos, 2i+1] = cos(pos / 10000^(2i/dim)).
    """
    if dim % 2 != 0:
        raise ValueError(f"dim must be even, got {dim}")
    pos = torch.arange(T, dtype=torch.float64)[:, None]                   # (T, 1)
    freq = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (dim/2,)
    angle = pos * freq                                                      # (T, dim/2)
    pe = torch.zeros(T, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.float()


class LearnedPositionalEmbedding(Embedding):
    """One learned vector per position 0 .. max_T - 1 (GPT-2's position table).

    forward(positions) takes the positions themselves, int64 of any shape
    (usually torch.arange(T)), and returns their rows of `weight`
    (max_T, dim). Positions outside [0, max_T) raise an IndexError.
    """

    def __init__(self, max_T: int, dim: int):
        super().__init__(max_T, dim)
        self.max_T = max_T

    def forward(self, positions: Tensor,  # (...) int64
                ) -> Tensor:  # (..., dim)
        if positions.numel() and (positions.min() < 0 or positions.max() >= self.max_T):
            raise IndexError(f"positions must lie in [0, {self.max_T}), got "
                             f"{int(positions.min())} .. {int(positions.max())}")
        return super().forward(positions)


class RotaryEmbedding(nn.Module):
    """RoPE with interleaved pairs (x[2i], x[2i+1]), as in the RoFormer paper.

    Pair i at position pos is rotated by the angle pos * theta^(-2i/head_dim).
    The cos and sin tables for positions 0 .. max_T - 1 are computed once and
    kept as *non-persistent* buffers `cos` and `sin`, (max_T, head_dim/2):
    they follow .to(device) but are not in the state_dict, which is empty.

    forward(x, positions): x is (..., T, head_dim), positions (..., T) int64,
    broadcastable against x.shape[:-1] (for x of shape (B, H, T, head_dim)
    pass (T,) or (B, 1, T)). Returns a tensor shaped and typed like x.
    """

    def __init__(self, head_dim: int, max_T: int, theta: float = 10000.0):
        super().__init__()
        if head_dim % 2 != 0:
            raise ValueError(f"head_dim must be even, got {head_dim}")
        freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        angle = torch.arange(max_T, dtype=torch.float64)[:, None] * freq  # (max_T, head_dim/2)
        self.register_buffer("cos", torch.cos(angle).float(), persistent=False)
        self.register_buffer("sin", torch.sin(angle).float(), persistent=False)

    def forward(self, x: Tensor,  # (..., T, head_dim)
                positions: Tensor,  # (..., T) int64
                ) -> Tensor:  # (..., T, head_dim)
        cos = self.cos[positions].to(x.dtype)  # (..., T, head_dim/2)
        sin = self.sin[positions].to(x.dtype)
        x_even, x_odd = x[..., 0::2], x[..., 1::2]
        out_even = x_even * cos - x_odd * sin
        out_odd = x_even * sin + x_odd * cos
        return torch.stack([out_even, out_odd], dim=-1).flatten(-2)

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

Read exercises/units/u03_positions/README.md first. Check your work with
`llmfs check u03` or `pytest exercises/tests -m u03`.
Not allowed here: nn.Embedding and torch's other embedding functions (see
course.toml); index the weight yourself.
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
        # TODO(u03): Create self.weight, an nn.Parameter of shape
        # (num_embeddings, dim) filled with torch.randn.
        raise NotImplementedError("u03: Embedding.__init__")

    def forward(self, ids: Tensor,  # (...) int64
                ) -> Tensor:  # (..., dim)
        # TODO(u03): Return the rows of self.weight picked out by ids.
        # Plain tensor indexing does it, and autograd then sends each
        # output's gradient back to the row it came from.
        raise NotImplementedError("u03: Embedding.forward")


def sinusoidal_positions(T: int, dim: int) -> Tensor:  # (T, dim) float32
    """The fixed positional encodings of "Attention Is All You Need" (dim even).

    PE[pos, 2i] = sin(pos / 10000^(2i/dim)), PE[pos, 2i+1] = cos(pos / 10000^(2i/dim)).
    """
    # TODO(u03): Build the (T, dim) table.
    #   1. raise ValueError if dim is odd.
    #   2. pos: the positions 0 .. T-1 as a column (T, 1).
    #   3. freq: 10000 ** (-(2i) / dim) for i = 0 .. dim/2 - 1, i.e. for the
    #      even column indices 0, 2, 4, ... (dim/2,).
    #   4. angle = pos * freq, (T, dim/2); sines go to the even columns,
    #      cosines to the odd ones.
    #   5. return it as float32 (computing in float64 first is fine).
    raise NotImplementedError("u03: sinusoidal_positions")


class LearnedPositionalEmbedding(Embedding):
    """One learned vector per position 0 .. max_T - 1 (GPT-2's position table).

    forward(positions) takes the positions themselves, int64 of any shape
    (usually torch.arange(T)), and returns their rows of `weight`
    (max_T, dim). Positions outside [0, max_T) raise an IndexError.
    """

    def __init__(self, max_T: int, dim: int):
        super().__init__(max_T, dim)
        # TODO(u03): Remember max_T. (The table itself is an Embedding's
        # weight, made by super().__init__ above.)
        raise NotImplementedError("u03: LearnedPositionalEmbedding.__init__")

    def forward(self, positions: Tensor,  # (...) int64
                ) -> Tensor:  # (..., dim)
        # TODO(u03): Raise IndexError for a position < 0 or >= max_T (a
        # negative index would silently read from the end of the table),
        # then look the positions up like any Embedding.
        raise NotImplementedError("u03: LearnedPositionalEmbedding.forward")


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
        # TODO(u03): Precompute the rotation angles.
        #   1. raise ValueError if head_dim is odd.
        #   2. freq = theta ** (-(2i) / head_dim) for i = 0 .. head_dim/2 - 1.
        #   3. angle = position * freq for positions 0 .. max_T-1: (max_T, head_dim/2).
        #   4. self.register_buffer("cos", cos(angle), persistent=False), same for "sin".
        raise NotImplementedError("u03: RotaryEmbedding.__init__")

    def forward(self, x: Tensor,  # (..., T, head_dim)
                positions: Tensor,  # (..., T) int64
                ) -> Tensor:  # (..., T, head_dim)
        # TODO(u03): Rotate each pair (x[2i], x[2i+1]) by its angle.
        #   1. cos, sin = the rows of your tables at `positions`, cast to x.dtype:
        #      (..., T, head_dim/2).
        #   2. x_even = x[..., 0::2], x_odd = x[..., 1::2]
        #   3. new even = x_even*cos - x_odd*sin; new odd = x_even*sin + x_odd*cos
        #   4. interleave them back: stack on a new last dim, then flatten the
        #      last two dims, so the output is (..., T, head_dim) again.
        raise NotImplementedError("u03: RotaryEmbedding.forward")

"""Unit u04: attention.

Attention lets every position in a sequence gather information from other
positions. Each position asks a *query* q; every position offers a *key* k
and a *value* v. The output for a query is the average of the values,
weighted by how well the query matches each key:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

    Q: (..., Tq, d_k)   K: (..., Tk, d_k)   V: (..., Tk, d_v)   out: (..., Tq, d_v)

Dividing by sqrt(d_k) keeps the scores at unit variance when q and k have
unit-variance entries, so the softmax does not saturate as d_k grows.

A *mask* says which keys a query may attend to. Here, as in
torch.nn.functional.scaled_dot_product_attention, a boolean mask is True
where attention is *allowed*. A query whose row of the mask is all False
(it may attend to nothing, e.g. a padding position) gets an output of zeros.

Multi-head attention runs h attentions side by side on d_model / h
dimensional slices, each with its own projections, and mixes the results
with an output projection.

Read exercises/units/u04_attention/README.md first. Check your work with
`llmfs check u04` or `pytest exercises/tests -m u04`.
Not allowed here: torch's softmax and attention functions (see course.toml).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m), with m = max_j x_j.

    Subtracting the maximum changes nothing mathematically but keeps exp()
    from overflowing: the largest exponent is exp(0) = 1. A slice that is
    entirely -inf (nothing allowed) comes out as all zeros, not NaN.
    """
    # TODO(u04): Implement softmax along `dim`.
    #   1. m = the maximum along `dim` (keepdim=True); where m is -inf, use 0.
    #   2. e = exp(x - m)
    #   3. divide e by its sum along `dim`, guarding against a sum of 0.
    raise NotImplementedError("u04: softmax")


def causal_mask(T: int) -> Tensor:
    """(T, T) bool, True where query i may attend to key j, i.e. j <= i."""
    # TODO(u04): Build the lower-triangular mask (the diagonal is allowed).
    raise NotImplementedError("u04: causal_mask")


def scaled_dot_product_attention(q: Tensor,  # (..., Tq, d)
                                 k: Tensor,  # (..., Tk, d)
                                 v: Tensor,  # (..., Tk, dv)
                                 mask: Tensor | None = None,  # bool, broadcastable to (..., Tq, Tk)
                                 ) -> Tensor:  # (..., Tq, dv)
    """softmax(q k^T / sqrt(d)) v, with disallowed scores set to -inf first."""
    # TODO(u04): Implement attention.
    #   1. scores (..., Tq, Tk) = q @ k^T / sqrt(d)    (transpose the last two dims of k)
    #   2. where mask is False, set the score to -inf
    #   3. weights = your softmax over the keys (the last dim)
    #   4. return weights @ v
    raise NotImplementedError("u04: scaled_dot_product_attention")


class MultiHeadAttention(nn.Module):
    """Multi-head attention; self-attention unless `context` is given.

    Submodules: q_proj, k_proj, v_proj, out_proj, each nn.Linear(d_model,
    d_model, bias=False). Dropout, if any, is applied to the output.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        # TODO(u04): Check that n_heads divides d_model (raise ValueError if
        # not), remember n_heads and head_dim, and create q_proj, k_proj,
        # v_proj, out_proj (nn.Linear, bias=False) and an nn.Dropout.
        raise NotImplementedError("u04: MultiHeadAttention.__init__")

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, d_model) -> (B, n_heads, T, head_dim)"""
        # TODO(u04): view as (B, T, n_heads, head_dim), then swap T and the head axis.
        raise NotImplementedError("u04: MultiHeadAttention.split_heads")

    def merge_heads(self, x: Tensor) -> Tensor:
        """(B, n_heads, T, head_dim) -> (B, T, d_model)"""
        # TODO(u04): the inverse of split_heads.
        raise NotImplementedError("u04: MultiHeadAttention.merge_heads")

    def forward(self, x: Tensor,  # (B, Tq, d_model)
                context: Tensor | None = None,  # (B, Tk, d_model); None means x
                mask: Tensor | None = None,  # bool, broadcastable to (B, n_heads, Tq, Tk)
                ) -> Tensor:  # (B, Tq, d_model)
        # TODO(u04): queries come from x; keys and values from context (or x).
        # Project, split into heads, attend with your
        # scaled_dot_product_attention, merge heads, project out, dropout.
        raise NotImplementedError("u04: MultiHeadAttention.forward")

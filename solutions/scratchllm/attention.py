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
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(x - m)
    return e / e.sum(dim=dim, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)


def causal_mask(T: int) -> Tensor:
    """(T, T) bool, True where query i may attend to key j, i.e. j <= i."""
    return torch.tril(torch.ones(T, T, dtype=torch.bool))


def scaled_dot_product_attention(q: Tensor,  # (..., Tq, d)
                                 k: Tensor,  # (..., Tk, d)
                                 v: Tensor,  # (..., Tk, dv)
                                 mask: Tensor | None = None,  # bool, broadcastable to (..., Tq, Tk)
                                 ) -> Tensor:  # (..., Tq, dv)
    """softmax(q k^T / sqrt(d)) v, with disallowed scores set to -inf first."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return softmax(scores, dim=-1) @ v


class MultiHeadAttention(nn.Module):
    """Multi-head attention; self-attention unless `context` is given.

    Submodules: q_proj, k_proj, v_proj, out_proj, each nn.Linear(d_model,
    d_model, bias=False). Dropout, if any, is applied to the output.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, d_model) -> (B, n_heads, T, head_dim)"""
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)

    def merge_heads(self, x: Tensor) -> Tensor:
        """(B, n_heads, T, head_dim) -> (B, T, d_model)"""
        B, _, T, _ = x.shape
        return x.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)

    def forward(self, x: Tensor,  # (B, Tq, d_model)
                context: Tensor | None = None,  # (B, Tk, d_model); None means x
                mask: Tensor | None = None,  # bool, broadcastable to (B, n_heads, Tq, Tk)
                ) -> Tensor:  # (B, Tq, d_model)
        source = x if context is None else context
        q = self.split_heads(self.q_proj(x))
        k = self.split_heads(self.k_proj(source))
        v = self.split_heads(self.v_proj(source))
        y = scaled_dot_product_attention(q, k, v, mask=mask)
        return self.dropout(self.out_proj(self.merge_heads(y)))

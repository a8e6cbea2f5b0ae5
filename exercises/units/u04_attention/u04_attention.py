# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Unit u04: Attention, in pictures
#
# You write `scratchllm/attention.py`: a stable softmax, the causal mask, scaled
# dot-product attention and multi-head attention. The reading
# (`exercises/units/u04_attention/README.md`) has the math; this notebook runs your
# checks and draws what your code computes.
#
# **In Colab**, the first cell fetches the course into `/content/llm-from-scratch`.
# Open `exercises/scratchllm/attention.py` there in the file browser (left), write a
# TODO, save, and run the cells again. Colab forgets its files when the runtime
# stops: download your module when you are done.

# %%
# In Colab: fetch the course and install it (Colab's own torch, CPU or GPU, is kept).
# On your own machine, with the kit installed, this only opens the unit.
import os
import sys

if "google.colab" in sys.modules:
    if not os.path.isdir("/content/llm-from-scratch"):
        print("Fetching the course ...")
        # !git clone --quiet --depth 1 https://github.com/llm-from-scratch/llm-from-scratch /content/llm-from-scratch
        # %pip install --quiet -e /content/llm-from-scratch
    sys.path.insert(0, "/content/llm-from-scratch")
    os.chdir("/content/llm-from-scratch/exercises/units/u04_attention")

from grader.notebook import open_unit

unit = open_unit("u04")

# %% [markdown]
# ## Check your code
#
# This is `llmfs check u04`: the unit's public tests against your module. Run it
# after every change; the pictures below need the functions it tests.

# %%
unit.check()

# %%
import matplotlib.pyplot as plt
import torch

attention = unit.module("attention")

# %% [markdown]
# ## A softmax that survives large scores
#
# Scores of 1000 overflow `exp` in float32. Subtracting the row's maximum first
# changes nothing mathematically and keeps every `exp` at most 1.

# %%
with unit.todo():
    big = torch.tensor([1000.0, 1001.0, 1002.0])
    print("softmax of", big.tolist(), "=", attention.softmax(big).tolist())

# %% [markdown]
# ## Attention weights, with and without the causal mask
#
# To see the weights themselves, pass the identity matrix as the values: then
# `softmax(q kᵀ / √d) V` *is* the weight matrix. Here each character's query and key
# is its one-hot vector (times 4), so a position attends to the positions that hold
# the same character. The causal mask keeps each row from looking at later columns:
# the upper triangle goes to zero and each row still sums to 1.

# %%
text = "the cat sat on the mat"
chars = sorted(set(text))
onehot = torch.eye(len(chars))[[chars.index(c) for c in text]] * 4.0  # (T, n_chars)
T = len(text)

with unit.todo():
    full = attention.scaled_dot_product_attention(onehot, onehot, torch.eye(T))
    causal = attention.scaled_dot_product_attention(onehot, onehot, torch.eye(T), mask=attention.causal_mask(T))
    fig, axes = plt.subplots(1, 2, figsize=(13, 6))
    for ax, weights, title in [(axes[0], full, "no mask"), (axes[1], causal, "causal mask")]:
        ax.imshow(weights.detach(), cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(T), list(text))
        ax.set_yticks(range(T), list(text))
        ax.set_xlabel("key position (attended to)")
        ax.set_ylabel("query position")
        ax.set_title(f"attention weights, {title}")
    plt.show()
    print("each row sums to 1:", torch.allclose(causal.sum(-1), torch.ones(T)))

# %% [markdown]
# ## Heads look at different things
#
# Multi-head attention splits `d_model` into `n_heads` smaller spaces, each with its
# own weights. Below, a freshly initialised `MultiHeadAttention` on random inputs:
# the heads' causal weight patterns already differ, and training makes each head
# specialise.

# %%
with unit.todo():
    torch.manual_seed(0)
    mha = attention.MultiHeadAttention(d_model=32, n_heads=4)
    x = torch.randn(1, 12, 32)
    q = mha.split_heads(mha.q_proj(x))  # (1, heads, T, head_dim)
    k = mha.split_heads(mha.k_proj(x))
    eye = torch.eye(12).expand(1, 4, 12, 12)
    weights = attention.scaled_dot_product_attention(q, k, eye, mask=attention.causal_mask(12))[0]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for h, ax in enumerate(axes):
        ax.imshow(weights[h].detach(), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"head {h}")
        ax.set_xlabel("key")
        ax.set_ylabel("query")
    plt.show()

# %% [markdown]
# ## Next
#
# Unit u05 wraps your attention into a Transformer block, with LayerNorm, a
# feed-forward network and residual connections.

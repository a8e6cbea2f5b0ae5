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
# # Unit u03: Positions, in pictures
#
# You write `scratchllm/embeddings.py`: a token embedding table, the sinusoidal
# positions of "Attention Is All You Need", GPT-2's learned positions and rotary
# positions (RoPE). The reading (`exercises/units/u03_positions/README.md`) has the
# math; this notebook runs your checks and draws your encodings: the sinusoid matrix,
# how similar two positions look to a dot product, and how RoPE turns queries and
# keys so that their score depends only on how far apart they are.
#
# **In Colab**, the first cell fetches the course into `/content/llm-from-scratch`.
# Open `exercises/scratchllm/embeddings.py` there in the file browser (left), write a
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
    os.chdir("/content/llm-from-scratch/exercises/units/u03_positions")

from grader.notebook import open_unit

unit = open_unit("u03")

# %% [markdown]
# ## Check your code
#
# This is `llmfs check u03`: the unit's public tests against your module. Run it
# after every change; the pictures below need the functions it tests.

# %%
unit.check()

# %%
import matplotlib.pyplot as plt
import torch

embeddings = unit.module("embeddings")

# %% [markdown]
# ## The sinusoid matrix
#
# Row `pos` of `sinusoidal_positions(T, dim)` is the vector added to the token at
# position `pos`. Columns come in pairs (sine, cosine) that share a frequency; the
# first pairs (left) turn fast, one radian per position, and the last ones so slowly
# that they barely change over 128 positions (section 3 of the reading). On the
# right, four columns as curves: pair 2's sine and its cosine partner (a period of
# about 11 positions), then the sines of pairs 8 and 16, slower and slower.

# %%
T, dim = 128, 64

with unit.todo():
    pe = embeddings.sinusoidal_positions(T, dim)  # (T, dim)
    fig, (ax_map, ax_cols) = plt.subplots(1, 2, figsize=(14, 5), layout="constrained",
                                          gridspec_kw={"width_ratios": [1, 1.3]})
    image = ax_map.imshow(pe, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax_map, label="PE[pos, column]")
    ax_map.set_title(f"sinusoidal_positions({T}, {dim})")
    ax_map.set_xlabel("column (even: sin, odd: cos)")
    ax_map.set_ylabel("position")
    for column in (4, 5, 16, 32):
        kind = "sin" if column % 2 == 0 else "cos"
        ax_cols.plot(pe[:, column], label=f"column {column} ({kind}, pair {column // 2})")
    ax_cols.set_title("some columns along the positions")
    ax_cols.set_xlabel("position")
    ax_cols.set_ylabel("value")
    ax_cols.legend(loc="lower left", framealpha=0.9)
    plt.show()

# %% [markdown]
# ## How alike are two positions?
#
# The dot product PE[m] · PE[n] of two rows. Each pair contributes
# sin(mω)sin(nω) + cos(mω)cos(nω) = cos((m − n)ω), so the product depends only on
# the distance m − n: the picture is the same along every diagonal. It is largest
# on the diagonal (a position is most like itself) and falls off, with ripples, as
# positions move apart.

# %%
with unit.todo():
    pe = embeddings.sinusoidal_positions(T, dim)
    similarity = pe @ pe.T  # (T, T)
    fig, (ax_map, ax_row) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    image = ax_map.imshow(similarity, cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax_map, label="PE[m] · PE[n]")
    ax_map.set_title("dot product between positions")
    ax_map.set_xlabel("position n")
    ax_map.set_ylabel("position m")
    for m in (0, 40, 100):
        ax_row.plot(range(T), similarity[m], label=f"m = {m}")
    ax_row.set_title("one row each: PE[m] · PE[n]")
    ax_row.set_xlabel("position n")
    ax_row.set_ylabel("dot product")
    ax_row.legend()
    plt.show()

# %% [markdown]
# ## RoPE: one rotation per pair and position
#
# RoPE rotates pair i of a query or key at position m by the angle m·θ_i, with
# θ_i = 10000^(−2i/d) (section 5 of the reading). To see the angles your
# `RotaryEmbedding` uses, rotate the vector (1, 0, 1, 0, ...): each pair comes out
# as (cos a, sin a), and `atan2` reads the angle a back, wrapped into (−π, π].
# Fast pairs (left) go round many times over 64 positions; the slow ones hardly move.

# %%
head_dim, max_T = 32, 64
positions = torch.arange(max_T)

with unit.todo():
    rope = embeddings.RotaryEmbedding(head_dim, max_T)
    ones = torch.zeros(max_T, head_dim)
    ones[:, 0::2] = 1.0  # every pair is (1, 0)
    turned = rope(ones, positions)  # (max_T, head_dim): pair i is (cos a, sin a)
    angle = torch.atan2(turned[:, 1::2], turned[:, 0::2])  # (max_T, head_dim / 2)
    fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
    image = ax.imshow(angle, cmap="twilight", vmin=-torch.pi, vmax=torch.pi, aspect="auto",
                      interpolation="nearest")
    fig.colorbar(image, ax=ax, label="rotation angle (radians, wrapped)")
    ax.set_title(f"RoPE angles, head_dim = {head_dim}")
    ax.set_xlabel("pair i (dimensions 2i, 2i+1)")
    ax.set_ylabel("position m")
    plt.show()

# %% [markdown]
# ## RoPE scores depend only on the offset
#
# Take one query vector q and one key vector k, put q at position m and k at
# position n, rotate both with your RoPE and take the score q · k. Without RoPE the
# score would be the same for every (m, n). With it, the left picture is constant
# along each diagonal, and on the right the score against the offset n − m is the
# same curve whichever m the query sits at: attention sees how far apart two
# tokens are, not where they are.

# %%
with unit.todo():
    rope = embeddings.RotaryEmbedding(head_dim, max_T)
    generator = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, head_dim, generator=generator)
    q_at = rope(q.expand(max_T, head_dim), positions)  # row m: q rotated as at position m
    k_at = rope(k.expand(max_T, head_dim), positions)  # row n: k rotated as at position n
    scores = q_at @ k_at.T  # (max_T, max_T): scores[m, n]
    fig, (ax_map, ax_offset) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    limit = float(scores.abs().max())
    image = ax_map.imshow(scores, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    fig.colorbar(image, ax=ax_map, label="score")
    ax_map.set_title("RoPE(q, m) · RoPE(k, n)")
    ax_map.set_xlabel("key position n")
    ax_map.set_ylabel("query position m")
    for m, style in ((0, "-"), (20, "--"), (45, ":")):
        offsets = positions - m
        ax_offset.plot(offsets, scores[m], style, linewidth=2, label=f"query at m = {m}")
    ax_offset.axhline(float(q @ k), color="gray", linewidth=1, label="q · k without RoPE")
    ax_offset.set_title("one row each, against the offset")
    ax_offset.set_xlabel("offset n − m")
    ax_offset.set_ylabel("score")
    ax_offset.legend()
    plt.show()
    print("the rotation keeps lengths: |q| =", round(float(q.norm()), 4),
          " |RoPE(q, m)| for m = 0, 20, 45:", [round(float(q_at[m].norm()), 4) for m in (0, 20, 45)])

# %% [markdown]
# ## Next
#
# Unit u04 builds attention, the layer whose queries and keys RoPE rotates: every
# position looks at the others and takes a weighted average of what it finds.

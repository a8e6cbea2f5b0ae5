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
# # Unit u05: Blocks, in pictures
#
# You write `scratchllm/layers.py`: LayerNorm, RMSNorm, GELU, the two feed-forward
# networks and the pre-norm Transformer blocks, built on your u04 attention. The
# reading (`exercises/units/u05_blocks/README.md`) has the math; this notebook runs
# your checks and shows what your layers do: GELU next to ReLU, what LayerNorm and
# RMSNorm do to a token's vector, and the residual stream flowing through a stack of
# your blocks.
#
# **In Colab**, the first cell fetches the course into `/content/llm-from-scratch`.
# Open `exercises/scratchllm/layers.py` there in the file browser (left), write a
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
    os.chdir("/content/llm-from-scratch/exercises/units/u05_blocks")

from grader.notebook import open_unit

unit = open_unit("u05")

# %% [markdown]
# ## Check your code
#
# This is `llmfs check u05`: the unit's public tests against your module. Run it
# after every change; the pictures below need the functions it tests. The blocks
# use your u04 attention, and the last picture your u03 embeddings: finish those
# units first.

# %%
unit.check()

# %%
import matplotlib.pyplot as plt
import torch

layers = unit.module("layers")
embeddings = unit.module("embeddings")

# %% [markdown]
# ## GELU next to ReLU
#
# GELU is a smooth ReLU (section 4 of the reading): close to x for large x, close to
# 0 for very negative x, and in between it lets a little negative signal through,
# with a dip to about −0.17. Its slope (right, from torch's autograd through your
# `gelu`) changes smoothly instead of jumping from 0 to 1 at zero.

# %%
with unit.todo():
    x = torch.linspace(-4, 4, 801, requires_grad=True)
    y = layers.gelu(x)
    (slope,) = torch.autograd.grad(y.sum(), x)
    x, y = x.detach(), y.detach()
    lowest = int(y.argmin())

    fig, (ax_f, ax_slope) = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    ax_f.plot(x, torch.relu(x), "--", color="gray", label="ReLU")
    ax_f.plot(x, y, linewidth=2, label="your gelu")
    ax_f.annotate(f"minimum {float(y[lowest]):.3f} at x = {float(x[lowest]):.2f}",
                  (float(x[lowest]), float(y[lowest])), xytext=(-3.9, 1.2), arrowprops={"arrowstyle": "->"})
    ax_f.set_title("the function")
    ax_f.set_ylabel("activation(x)")
    ax_slope.plot(x, (x > 0).float(), "--", color="gray", label="ReLU")
    ax_slope.plot(x, slope, linewidth=2, label="your gelu")
    ax_slope.set_title("its derivative")
    ax_slope.set_ylabel("d activation / dx")
    for ax in (ax_f, ax_slope):
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
    plt.show()

# %% [markdown]
# ## LayerNorm or RMSNorm: what happens to an offset
#
# Take one random vector z of 64 numbers (mean about 0, spread about 1) and add the
# same offset c to every entry. LayerNorm subtracts the mean first, so its output is
# the same whatever c is: mean 0, standard deviation 1. RMSNorm only divides by the
# root mean square; it keeps the output's RMS at 1 too, but a large offset takes
# over: the mean heads to ±1 and the spread around it shrinks to 0. Both norms here
# are new, so their weight is 1 (and LayerNorm's bias 0).

# %%
with unit.todo():
    d = 64
    z = torch.randn(d, generator=torch.Generator().manual_seed(0))
    offsets = torch.linspace(-6, 6, 121)
    rows = z + offsets[:, None]  # (121, d): row r is z + offsets[r]
    outputs = {"LayerNorm": layers.LayerNorm(d)(rows).detach(), "RMSNorm": layers.RMSNorm(d)(rows).detach()}

    fig, (ax_mean, ax_std) = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    for (name, out), style in zip(outputs.items(), ("-", "--")):
        ax_mean.plot(offsets, out.mean(-1), style, linewidth=2, label=name)
        ax_std.plot(offsets, out.std(-1, unbiased=False), style, linewidth=2, label=name)
    ax_mean.set_title("mean of the output")
    ax_std.set_title("standard deviation of the output")
    for ax in (ax_mean, ax_std):
        ax.set_xlabel("offset c added to every entry of z")
        ax.grid(alpha=0.3)
        ax.legend()
    plt.show()

# %% [markdown]
# ## The residual stream through a stack of blocks
#
# The input: token embeddings plus sinusoidal positions (your u03), 32 tokens of
# width 64, then a stack of your `DecoderBlock`s, freshly initialised (GPT-2 style:
# LayerNorm and GELU). Each block adds to the stream and never replaces it (section
# 1 of the reading), and pre-norm never normalises the stream itself, only the copy
# each sublayer reads (section 3).
#
# Left: each token's mean and standard deviation over its 64 features, in the
# stream after the last block (they differ from token to token) and after a
# LayerNorm (mean 0, std 1 for every token). Right: the size of the stream (root
# mean square over the features, averaged over the tokens) grows as the blocks add
# to it, while the copy that `norm1` hands each block stays at 1. This growth is
# why a GPT needs a final norm before its output head (unit u06).

# %%
n_blocks = 12 if unit.quick else 48
T, d_model, n_heads = 32, 64, 4


def rms(t):  # (..., d) -> (...): root mean square over the features
    return t.pow(2).mean(-1).sqrt()


with unit.todo():
    torch.manual_seed(0)
    token_table = embeddings.Embedding(100, d_model)
    blocks = [layers.DecoderBlock(d_model, n_heads, 4 * d_model) for _ in range(n_blocks)]
    with torch.no_grad():
        x = token_table(torch.randint(0, 100, (1, T))) + embeddings.sinusoidal_positions(T, d_model)
        stream_size, read_size = [float(rms(x).mean())], []
        for block in blocks:
            read_size.append(float(rms(block.norm1(x)).mean()))
            x = block(x)
            stream_size.append(float(rms(x).mean()))
        normed = layers.LayerNorm(d_model)(x)

    fig, (ax_tokens, ax_depth) = plt.subplots(1, 2, figsize=(14, 5.5), layout="constrained")
    ax_tokens.plot(x[0].mean(-1), "o-", color="tab:blue", label="stream: mean")
    ax_tokens.plot(x[0].std(-1, unbiased=False), "s-", color="tab:red", label="stream: std")
    ax_tokens.plot(normed[0].mean(-1), "o--", color="tab:blue", alpha=0.6, label="after LayerNorm: mean")
    ax_tokens.plot(normed[0].std(-1, unbiased=False), "s--", color="tab:red", alpha=0.6,
                   label="after LayerNorm: std")
    ax_tokens.set_title(f"each token's statistics after block {n_blocks}")
    ax_tokens.set_xlabel("position")
    ax_tokens.set_ylabel("over the token's 64 features")
    ax_tokens.legend(ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    ax_depth.plot(range(n_blocks + 1), stream_size, "o-", label="the stream x after k blocks")
    ax_depth.plot(range(n_blocks), read_size, "s--", label="norm1(x): what the next block reads")
    ax_depth.set_ylim(0, None)
    ax_depth.set_title("size of the residual stream with depth")
    ax_depth.set_xlabel("blocks applied so far (k)")
    ax_depth.set_ylabel("RMS over features, mean over tokens")
    ax_depth.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15))
    for ax in (ax_tokens, ax_depth):
        ax.grid(alpha=0.3)
    plt.show()

# %% [markdown]
# ## Next
#
# Unit u06 stacks your blocks into whole models: a GPT (embeddings, blocks, a final
# norm and an output head tied to the embeddings) and an encoder-decoder Transformer.

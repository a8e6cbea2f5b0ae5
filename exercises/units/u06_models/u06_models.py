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
# # Unit u06: Models, in pictures
#
# You write `scratchllm/model.py`: a GPT built from your u03 embeddings, u04
# attention and u05 blocks, with weight tying, GPT-2 initialisation and a
# parameter count (and an encoder-decoder Transformer). The reading
# (`exercises/units/u06_models/README.md`) has the math; this notebook runs your
# checks and looks inside the GPT your code builds: where its parameters are,
# what it predicts before any training, and that it never peeks at the future.
#
# **In Colab**, the first cell fetches the course into `/content/llm-from-scratch`.
# Open `exercises/scratchllm/model.py` there in the file browser (left), write a
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
    os.chdir("/content/llm-from-scratch/exercises/units/u06_models")

from grader.notebook import open_unit

unit = open_unit("u06")

# %% [markdown]
# ## Check your code
#
# This is `llmfs check u06`: the unit's public tests against your module. Run it
# after every change; the pictures below need the classes it tests. (The model
# is made of your u03, u04 and u05 parts: if those still have TODOs, finish
# them first.)

# %%
unit.check()

# %%
import math

import matplotlib.pyplot as plt
import torch

model = unit.module("model")

# The capstone's character model (u09): 65 characters of Shakespeare, 4 layers.
SHAPE = dict(block_size=64, n_layer=4, n_head=4, d_model=128, d_ff=512)
V = 65

# %% [markdown]
# ## Where the parameters are
#
# Each bar adds up your model's own parameters, grouped by the part they belong
# to (their names are fixed in the module's docstring). On the left, the
# character model the capstone trains; on the right, the same shape with GPT-2's
# vocabulary of 50,257 tokens, tied and untied. With a large vocabulary the
# embedding table is most of a small model, and without tying the head is a second
# copy of it. A tied head has no parameters of its own: it *is* the embedding
# table, so its bar is empty. Section 5 of the reading has the formula; the title
# shows your `num_parameters()`.

# %%
PARTS = ["embeddings", "attention", "feed-forward", "norms", "head"]


def part_of(name):
    """Which part of the GPT a parameter's name belongs to."""
    if name.startswith(("tok_emb", "pos_emb")):
        return "embeddings"
    if ".attn." in name:
        return "attention"
    if ".ffn." in name:
        return "feed-forward"
    if "norm" in name:
        return "norms"
    if name.startswith("lm_head"):
        return "head"
    return "other"


def short(n):
    """A parameter count as a bar's label."""
    return f"{n / 1e6:.2f}M" if n >= 100_000 else f"{n:,}"


def breakdown(gpt):
    """Parameters per part; each Parameter counted once, as model.parameters() lists them."""
    counts = dict.fromkeys(PARTS, 0)
    for name, p in gpt.named_parameters():
        counts[part_of(name)] = counts.get(part_of(name), 0) + p.numel()
    return counts


with unit.todo():
    torch.manual_seed(0)
    small = model.GPT(model.GPTConfig(vocab_size=V, **SHAPE))
    big_tied = model.GPT(model.GPTConfig(vocab_size=50257, **SHAPE))
    big_untied = model.GPT(model.GPTConfig(vocab_size=50257, tie_weights=False, **SHAPE))

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 4.8))
    counts = breakdown(small)
    bars = left.bar(list(counts), list(counts.values()), color="tab:blue")
    left.bar_label(bars, labels=[short(n) for n in counts.values()])
    left.set_title(f"V = {V} (characters), tied: num_parameters() = {small.num_parameters():,}")
    left.set_ylabel("parameters")
    left.margins(y=0.15)

    width = 0.4
    for shift, gpt, label, color in [(-width / 2, big_tied, "tied", "tab:blue"),
                                     (width / 2, big_untied, "untied", "tab:orange")]:
        counts = breakdown(gpt)
        xs = [i + shift for i in range(len(counts))]
        bars = right.bar(xs, list(counts.values()), width, color=color,
                         label=f"{label}: num_parameters() = {gpt.num_parameters():,}")
        right.bar_label(bars, labels=[short(n) for n in counts.values()], fontsize=8)
    right.set_xticks(range(len(counts)), list(counts))
    right.set_title("V = 50,257 (GPT-2's tokens), same shape")
    right.set_ylabel("parameters")
    right.legend(loc="upper center")
    right.margins(y=0.15)
    fig.suptitle("Where a GPT's parameters are (4 layers, d_model 128, d_ff 512, block_size 64)")
    fig.tight_layout()
    plt.show()
    for gpt in (small, big_tied, big_untied):
        parts = sum(breakdown(gpt).values())
        print(f"parts add up to {parts:,}; num_parameters() says {gpt.num_parameters():,}"
              + ("" if parts == gpt.num_parameters() else "  <- these should be equal"))

# %% [markdown]
# ## Before training, the model knows nothing
#
# A model that knows nothing should give every token the same probability, 1/V:
# then its next-token distribution has the largest possible entropy, ln V, and its
# loss on any text is ln V too (section 3 of the reading). GPT-2's initialisation
# (your `gpt2_init_`, standard deviation 0.02) makes all logits nearly equal, which
# is exactly that. Below, the same model is initialised again with your
# `gpt2_init_` at standard deviation 1: the logits are now large, the predictions
# are confident and arbitrary, and the first loss is far above ln V: a model that
# has to unlearn its own noise before it can learn anything.

# %%
with unit.todo():
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, V, (1, SHAPE["block_size"] + 1), generator=gen)
    x, y = idx[:, :-1], idx[:, 1:]  # y is x shifted by one token: the next tokens

    predictions = {}
    for std in (0.02, 1.0):
        torch.manual_seed(0)
        gpt = model.GPT(model.GPTConfig(vocab_size=V, **SHAPE))
        model.gpt2_init_(gpt, 2 * SHAPE["n_layer"], std=std)
        with torch.no_grad():
            logits, loss = gpt(x, y)
        predictions[std] = (torch.softmax(logits[0], dim=-1), loss.item())  # (T, V), ()

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 4.5))
    for (std, (probs, loss)), color in zip(predictions.items(), ["tab:blue", "tab:red"]):
        entropy = -(probs * torch.log(probs.clamp_min(1e-30))).sum(-1)  # (T,)
        label = f"init std {std}: first loss {loss:.2f}"
        left.bar(range(V), probs[-1], color=color, alpha=0.6, label=label)
        right.plot(entropy, "o-", color=color, markersize=3, label=label)
    left.axhline(1 / V, color="black", linestyle="--", label=f"uniform, 1/V = 1/{V}")
    left.set_xlabel("next token id")
    left.set_ylabel("probability")
    left.set_title("next-token distribution at the last position")
    left.legend()
    right.axhline(math.log(V), color="black", linestyle="--", label=f"ln V = {math.log(V):.2f}")
    right.set_ylim(0, 1.4 * math.log(V))
    right.set_xlabel("position")
    right.set_ylabel("entropy (nats)")
    right.set_title("entropy of the prediction at every position")
    right.legend(loc="upper center", ncol=2)
    fig.suptitle("An untrained GPT on random tokens")
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## The future does not leak into the past
#
# A language model is trained to predict token t+1 from tokens 0..t, at every
# position at once. If position t could see token t+1, it would copy the answer
# instead of learning (and then fail when it writes text, where the future does
# not exist yet). Below, one token in the middle of the input is changed, and the
# bars show how much the logits at each position moved: positions before the
# change must not move at all; the changed position and everything after it do.

# %%
with unit.todo():
    torch.manual_seed(0)
    gpt = model.GPT(model.GPTConfig(vocab_size=V, **SHAPE)).eval()
    T, changed = 32, 20
    gen = torch.Generator().manual_seed(1)
    idx = torch.randint(0, V, (1, T), generator=gen)
    edited = idx.clone()
    edited[0, changed] = (idx[0, changed] + 1) % V
    with torch.no_grad():
        moved = (gpt(edited)[0] - gpt(idx)[0]).abs().amax(dim=-1)[0]  # (T,)

    fig, ax = plt.subplots(figsize=(12, 3.8))
    ax.bar(range(T), moved, color=["tab:blue" if t < changed else "tab:orange" for t in range(T)])
    ax.axvline(changed - 0.5, color="black", linestyle="--", label=f"token {changed} changed here")
    ax.set_xlabel("position")
    ax.set_ylabel("largest change of a logit")
    ax.set_title("How far each position's logits move when one later token changes")
    ax.text(changed / 2 - 0.5, 0.5 * moved.max().item(), f"positions 0 to {changed - 1}:\n"
            f"largest change {moved[:changed].max().item():.3g}", ha="center")
    ax.legend()
    plt.show()
    before = moved[:changed].max().item()
    print(f"largest change before position {changed}: {before:.3g}"
          + ("  (none: causal)" if before == 0 else "  <- should be 0: an earlier position sees a later token"))

# %% [markdown]
# ## Next
#
# Unit u07 trains a model with your own loss, optimiser, learning-rate schedule
# and training loop; u08 makes your GPT write.

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
# # Unit u07: Training, in pictures
#
# You write `scratchllm/training.py`: a stable cross-entropy, AdamW, the warmup +
# cosine learning-rate schedule, gradient clipping, batches, loss scaling,
# checkpoints, and the loop that puts them together. The reading
# (`exercises/units/u07_training/README.md`) has the math; this notebook runs your
# checks, draws your schedule, and trains a small model with your loop while it
# watches the loss, the learning rate and your clipping.
#
# **In Colab**, the first cell fetches the course into `/content/llm-from-scratch`.
# Open `exercises/scratchllm/training.py` there in the file browser (left), write a
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
    os.chdir("/content/llm-from-scratch/exercises/units/u07_training")

from grader.notebook import open_unit

unit = open_unit("u07")

# %% [markdown]
# ## Check your code
#
# This is `llmfs check u07`: the unit's public tests against your module. Run it
# after every change; the pictures below need the functions it tests.

# %%
unit.check()

# %%
import math

import matplotlib.pyplot as plt
import torch

training = unit.module("training")

# %% [markdown]
# ## A loss that survives large logits
#
# The loss of the right answer is `logsumexp(z) - z_y`. Computed naively,
# `exp(1000)` is infinite in float32; with the row's maximum taken out first it is
# exact. Here the right answer (token 1) has logit 0 and another token has 1000:
# the model is confidently wrong, and the loss is 1000 nats.

# %%
with unit.todo():
    logits = torch.tensor([[1000.0, 0.0, -1000.0]])  # (1 position, V = 3)
    print("cross_entropy =", training.cross_entropy(logits, torch.tensor([1])).item())

# %% [markdown]
# ## The learning-rate schedule
#
# Your `lr_at`, iteration by iteration: a linear warmup from 0 while AdamW's
# statistics settle, half a cosine down to `min_lr` at `cosine_iters`, then flat
# (section 3 of the reading). Three values are fixed by the formula and worth
# checking by eye: 0 at iteration 0, `max_lr` at the end of the warmup, `min_lr`
# at `cosine_iters`.

# %%
with unit.todo():
    max_lr, min_lr, warmup, cosine = 1e-3, 1e-4, 100, 1000
    its = range(1200)
    lrs = [training.lr_at(it, max_lr, min_lr, warmup, cosine) for it in its]
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(its, lrs, color="tab:blue", label="lr_at(it)")
    ax.axvline(warmup, color="gray", linestyle=":", label=f"end of warmup (it = {warmup})")
    ax.axvline(cosine, color="gray", linestyle="--", label=f"cosine_iters = {cosine}")
    for y, name in [(max_lr, "max_lr"), (min_lr, "min_lr")]:
        ax.axhline(y, color="black", linewidth=0.6, alpha=0.4)
        ax.annotate(name, (len(its), y), ha="right", va="bottom")
    ax.set_xlabel("iteration")
    ax.set_ylabel("learning rate")
    ax.set_title(f"Warmup + cosine: max_lr={max_lr}, min_lr={min_lr}, warmup_iters={warmup}, "
                 f"cosine_iters={cosine}")
    ax.legend(loc="center right")
    plt.show()
    print(f"lr_at(0) = {lrs[0]}, lr_at({warmup}) = {lrs[warmup]}, lr_at({cosine}) = {lrs[cosine]:.6g}")

# %% [markdown]
# ## Your loop at work
#
# A tiny corpus: the course's own readings (about 100 kB of text), one token per
# character, the last tenth held out for validation. The model is the simplest
# language model there is, a *bigram* model that guesses the next character from
# the current one alone, made of torch's own layers, so this part needs nothing
# but your `training.py` (u09 trains your GPT with the same loop). Everything else
# is yours: `train` draws batches with your `get_batch`, sets your `lr_at`, steps
# your `AdamW` through your `train_step`, and measures the validation loss with
# your `estimate_loss`.
#
# While it runs, the notebook listens in on your `clip_grad_norm` (your
# `train_step` calls it with `max_norm`): it records the global gradient norm it
# receives and the norm it leaves behind.

# %%
readings = sorted((unit.course.exercises / "units").glob("*/README.md"))
text = "\n".join(path.read_text(encoding="utf-8") for path in readings)
chars = sorted(set(text))
ids = torch.tensor([chars.index(c) for c in text], dtype=torch.long)
split = int(0.9 * len(ids))
train_ids, val_ids = ids[:split], ids[split:]
V = len(chars)
print(f"{len(text):,} characters from {len(readings)} readings, {V} distinct: "
      f"{len(train_ids):,} to train on, {len(val_ids):,} held out")

ITERS = 150 if unit.quick else 600
MAX_NORM = 0.3  # low, so that you see it act: 1.0 (TrainConfig's default) seldom bites here

# %%
norms = []  # (before, after) for every call of clip_grad_norm during the run
history = []
with unit.todo():
    clip = training.clip_grad_norm

    def listening_clip(params, max_norm, eps=1e-6):
        params = list(params)
        before = clip(params, max_norm, eps)
        norms.append((before, clip(params, math.inf)))  # an infinite max_norm only measures
        return before

    torch.manual_seed(0)
    bigram = torch.nn.Sequential(torch.nn.Embedding(V, 64), torch.nn.Linear(64, V))  # (B, T) -> (B, T, V)
    config = training.TrainConfig(batch_size=32, block_size=32, max_iters=ITERS, max_lr=1e-2, min_lr=1e-3,
                                  warmup_iters=ITERS // 10, cosine_iters=ITERS, max_norm=MAX_NORM,
                                  eval_interval=ITERS // 10, eval_iters=20, progress=False, seed=0)
    training.clip_grad_norm = listening_clip
    try:
        history = training.train(bigram, train_ids, val_ids, config)
    finally:
        training.clip_grad_norm = clip
    print(f"{len(history)} iterations: first training loss {history[0]['train_loss']:.3f} "
          f"(ln V = {math.log(V):.3f}), last validation loss {history[-1]['val_loss']:.3f}")

# %% [markdown]
# ## Loss, learning rate and gradient norms
#
# Left: the loss starts at about ln V (an untrained model spreads its bets evenly)
# and falls steeply during and just after the warmup, then ever more slowly; a
# bigram model soon levels off, because one character of context is all it has.
# The training loss of each batch is noisy; the validation loss, measured on the
# same fixed windows every time, is smooth. Middle: the learning rate that `train` used,
# from the history. Right: the gradient norm before and after your clipping.
# Early on the gradients are large and your clipping cuts their norm to
# `max_norm` (set low here, 0.3, so that it acts); later they are small and pass
# unchanged, and the two curves coincide.

# %%
if history:
    its = [r["iteration"] for r in history]
    val = [(r["iteration"], r["val_loss"]) for r in history if r["val_loss"] is not None]
    fig, (ax_loss, ax_lr, ax_norm) = plt.subplots(1, 3, figsize=(16, 4.3))
    ax_loss.plot(its, [r["train_loss"] for r in history], color="tab:blue", alpha=0.5, label="train (one batch)")
    if val:
        ax_loss.plot(*zip(*val), "o-", color="tab:orange", label="validation")
    ax_loss.axhline(math.log(V), color="black", linestyle="--", label=f"ln V = {math.log(V):.2f}")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("loss (nats per character)")
    ax_loss.set_title("loss")
    ax_loss.legend()

    ax_lr.plot(its, [r["lr"] for r in history], color="tab:green")
    ax_lr.set_xlabel("iteration")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_title("learning rate (history['lr'])")

    if norms:
        before, after = zip(*norms)
        ax_norm.plot(before, color="tab:red", alpha=0.7, label="before clipping")
        ax_norm.plot(after, color="tab:blue", linestyle="--", label="after clipping")
        ax_norm.axhline(MAX_NORM, color="black", linewidth=0.8, label=f"max_norm = {MAX_NORM}")
        ax_norm.legend()
    ax_norm.set_xlabel("iteration")
    ax_norm.set_ylabel("global gradient norm")
    ax_norm.set_title("gradient norm, your clip_grad_norm")
    fig.suptitle(f"Your train() on the course's readings: a bigram model, {ITERS} steps")
    fig.tight_layout()
    plt.show()
    if not norms:
        print(f"Your train_step never called training.clip_grad_norm, though max_norm={MAX_NORM}: "
              "the gradients were not clipped.")
    else:
        clipped = sum(b > MAX_NORM for b, _ in norms)
        print(f"{clipped} of {len(norms)} steps were clipped; largest norm after clipping: "
              f"{max(a for _, a in norms):.4f}")
else:
    print("Not yet: nothing to draw, the cell above has not run your train to the end.")

# %% [markdown]
# ## Next
#
# Unit u08 turns a trained model's logits into text (temperature, top-k, top-p,
# a KV cache) and measures it (perplexity, bits per byte); u09 runs this loop on
# your GPT and Shakespeare.

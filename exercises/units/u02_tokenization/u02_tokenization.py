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
# # Unit u02: Byte-level BPE, in pictures
#
# You write `scratchllm/tokenizer.py`: GPT-2's pre-tokenizer, the BPE training loop,
# encoding and decoding, special tokens and saving. The reading
# (`exercises/units/u02_tokenization/README.md`) has the algorithm; this notebook
# runs your checks, trains your tokenizer on a small text, and shows what it learned:
# the first merges, how long its tokens are, and how much shorter the text gets as
# the merges grow.
#
# **In Colab**, the first cell fetches the course into `/content/llm-from-scratch`.
# Open `exercises/scratchllm/tokenizer.py` there in the file browser (left), write a
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
    os.chdir("/content/llm-from-scratch/exercises/units/u02_tokenization")

from grader.notebook import open_unit

unit = open_unit("u02")

# %% [markdown]
# ## Check your code
#
# This is `llmfs check u02`: the unit's public tests against your module. Run it
# after every change; the pictures below need the functions it tests.

# %%
unit.check()

# %%
import matplotlib.pyplot as plt
import numpy as np

tokenizer = unit.module("tokenizer")

# %% [markdown]
# ## A small text to train on
#
# The course's own readings: the README.md of every unit, English prose with some
# code and math, and they come with the course, so nothing is downloaded. The
# readings of units u01 to u08 train the tokenizer, joined with the special token
# `<|endoftext|>`; the reading of u09 is kept apart, to measure how well the
# tokenizer compresses text it has not seen.
#
# To train on Shakespeare instead, run `llmfs data prepare tinyshakespeare` once (it
# downloads 1 MB) and set `corpus = "tinyshakespeare"` below.

# %%
corpus = "readings"
ENDOFTEXT = "<|endoftext|>"

if corpus == "readings":
    readings = sorted((unit.course.exercises / "units").glob("u0*/README.md"))
    texts = [path.read_text(encoding="utf-8") for path in readings]
    train_text, held_out = ENDOFTEXT.join(texts[:-1]), texts[-1]
else:
    text = unit.module("data").load_text(corpus)
    cut = int(0.9 * len(text))
    train_text, held_out = text[:cut], text[cut:]
print(f"training text: {len(train_text.encode('utf-8')):,} bytes; "
      f"held-out text: {len(held_out.encode('utf-8')):,} bytes")

# %% [markdown]
# ## Training, and the first merges
#
# `train_bpe` starts from the 256 bytes and the special token, then merges the most
# frequent adjacent pair again and again. The first merges are the commonest pairs
# in English: a space and a letter (words keep their leading space), `he`, `in`, `er`,
# and soon the word ` the`, built from two earlier merges. Each row is one merge: its
# rank (the order it was learned), the pair, and the new token with its id, written
# as Python strings so that spaces show. (A `train_bpe` that recounts every pair
# after each merge takes several seconds here, the incremental one of section 5 of
# the reading a fraction of a second.)

# %%
vocab_size = 256 + 1 + (300 if unit.quick else 1000)
vocab, merges = {}, []  # until train_bpe has run


def shown(token):
    """A token's bytes as a readable Python string (bytes that are not UTF-8 as \\xNN)."""
    return repr(token.decode("utf-8", errors="backslashreplace"))


with unit.todo():
    vocab, merges = tokenizer.train_bpe(train_text, vocab_size, special_tokens=[ENDOFTEXT])
    print(f"{len(merges)} merges, {len(vocab)} tokens\n")

    print(f"{'rank':>4}  {'pair':<24}{'new token':<14}{'id':>5}")
    for rank, (a, b) in enumerate(merges[:25]):
        print(f"{rank:>4}  {shown(a) + ' + ' + shown(b):<24}{shown(a + b):<14}{257 + rank:>5}")

# %% [markdown]
# ## How long are the tokens?
#
# Left: the lengths of the merged tokens in the vocabulary (the 256 single bytes
# left out). Right: the tokens your `encode` uses on the held-out text, each counted
# every time it occurs: most of the text is covered by tokens of a few bytes, whole
# short words with their leading space.

# %%
with unit.todo():
    if not merges:
        print("Not yet: train the tokenizer above first.")
    else:
        bpe = tokenizer.Tokenizer(vocab, merges, special_tokens=[ENDOFTEXT])
        ids = bpe.encode(held_out)
        assert bpe.decode(ids) == held_out, "decode(encode(text)) should give the text back"
        merged_lengths = [len(vocab[257 + rank]) for rank in range(len(merges))]
        used_lengths = [len(vocab[i]) for i in ids]
        longest = max(merged_lengths + used_lengths)
        bins = np.arange(0.5, longest + 1.5)

        fig, (ax_vocab, ax_used) = plt.subplots(1, 2, figsize=(12, 4))
        ax_vocab.hist(merged_lengths, bins=bins, color="tab:green", edgecolor="white")
        ax_vocab.set_title(f"the {len(merges)} merged tokens of the vocabulary")
        ax_vocab.set_ylabel("tokens")
        ax_used.hist(used_lengths, bins=bins, color="tab:purple", edgecolor="white")
        ax_used.set_title(f"the {len(ids):,} tokens of the encoded held-out text")
        ax_used.set_ylabel("occurrences")
        for ax in (ax_vocab, ax_used):
            ax.set_xlabel("bytes per token")
        plt.show()
        longest_merged = sorted((a + b for a, b in merges), key=len, reverse=True)[:8]
        print("the longest tokens learned:", ", ".join(shown(t) for t in longest_merged))

# %% [markdown]
# ## Compression as the merges grow
#
# A tokenizer that keeps only its first k merges is a smaller tokenizer of the same
# kind. With k = 0 every byte is a token (1 byte per token); each merge makes some
# tokens longer, so the same held-out text needs fewer of them. The gain is fast at
# first (the first merges are the commonest pairs) and then slows down.

# %%
def first_merges(k):
    """Your Tokenizer with only the first k merges (and the k tokens they made)."""
    return tokenizer.Tokenizer({i: t for i, t in vocab.items() if i < 257 + k}, merges[:k],
                               special_tokens=[ENDOFTEXT])


with unit.todo():
    if not merges:
        print("Not yet: train the tokenizer above first.")
    else:
        ks = [k for k in (0, 10, 25, 50, 100, 200, 300, 500, 700, 1000) if k < len(merges)] + [len(merges)]
        n_bytes = len(held_out.encode("utf-8"))
        ratios = []
        for k in ks:
            ratios.append(n_bytes / len(first_merges(k).encode(held_out)))

        plt.figure(figsize=(6, 4))
        plt.plot(ks, ratios, marker="o")
        plt.title("held-out text: bytes per token")
        plt.xlabel("merges kept (k)")
        plt.ylabel("bytes / tokens (higher is shorter)")
        plt.grid(alpha=0.3)
        plt.show()
        sentence = "The attention weights of each token sum to one."
        for k in (0, ks[len(ks) // 2], ks[-1]):
            first_k = first_merges(k)
            pieces = [first_k.decode([i]) for i in first_k.encode(sentence)]
            print(f"k = {k:>4}: {len(pieces):>2} tokens  " + "|".join(pieces))

# %% [markdown]
# ## Next
#
# Unit u03 turns each token id into a vector, and tells the model where in the
# sequence each token stands.

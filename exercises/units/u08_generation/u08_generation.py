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
# # Unit u08: Generation and evaluation, in pictures
#
# You write `scratchllm/generation.py`: temperature, top-k and top-p filters,
# greedy and sampled choice of the next token, `generate` with a KV cache, and the
# measures (perplexity, bits per byte, exact match). The reading
# (`exercises/units/u08_generation/README.md`) has the math; this notebook runs your
# checks, shows how each filter reshapes one distribution, trains a small GPT for a
# moment and lets your code make it write.
#
# **In Colab**, the first cell fetches the course into `/content/llm-from-scratch`.
# Open `exercises/scratchllm/generation.py` there in the file browser (left), write
# a TODO, save, and run the cells again. Colab forgets its files when the runtime
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
    os.chdir("/content/llm-from-scratch/exercises/units/u08_generation")

from grader.notebook import open_unit

unit = open_unit("u08")

# %% [markdown]
# ## Check your code
#
# This is `llmfs check u08`: the unit's public tests against your module. Run it
# after every change; the pictures below need the functions it tests. (The text
# comes from your u06 GPT: finish u03 to u06 first.)

# %%
unit.check()

# %%
import math
import time

import matplotlib.pyplot as plt
import torch

generation = unit.module("generation")
model = unit.module("model")

# %% [markdown]
# ## One distribution, reshaped
#
# Say a model, after "The cat sat on the", gives these logits to eight words.
# Each panel shows the probabilities after one of your filters (sections 2 and 3
# of the reading): temperature below 1 sharpens, above 1 flattens, and neither
# reorders; top-k keeps a fixed number of words; top-p keeps the most likely words
# until their mass reaches p. A grey cross marks a word the filter removed
# (logit −∞, probability exactly 0). The last panel is what your `sample_next`
# actually draws, 4000 times, with top-p = 0.9: the bars should match the top-p
# panel.

# %%
words = ["mat", "sofa", "floor", "roof", "table", "dog", "moon", "piano"]
word_logits = torch.tensor([3.0, 2.2, 2.0, 1.2, 1.0, 0.2, -0.5, -1.0])  # (V,)

with unit.todo():
    panels = [
        ("temperature 1 (unchanged)", generation.apply_temperature(word_logits, 1.0)),
        ("temperature 0.5", generation.apply_temperature(word_logits, 0.5)),
        ("temperature 2", generation.apply_temperature(word_logits, 2.0)),
        ("top-k, k = 3", generation.top_k_filter(word_logits, 3)),
        ("top-p, p = 0.9", generation.top_p_filter(word_logits, 0.9)),
    ]
    draws = generation.sample_next(word_logits.expand(4000, -1), top_p=0.9,
                                   generator=torch.Generator().manual_seed(0))  # (4000,)
    frequencies = torch.bincount(draws, minlength=len(words)) / len(draws)

    fig, axes = plt.subplots(2, 3, figsize=(15, 7), sharey=True)
    for ax, (title, logits) in zip(axes.flat, panels):
        probs = torch.softmax(logits, dim=-1)
        ax.bar(words, probs, color="tab:blue")
        for i in torch.nonzero(torch.isneginf(logits)).flatten().tolist():
            ax.plot(i, 0.02, "x", color="gray", markersize=10)
        ax.set_title(title)
    axes.flat[-1].bar(words, frequencies, color="tab:orange")
    axes.flat[-1].set_title("sample_next(top_p=0.9): share of 4000 draws")
    for ax in axes.flat:
        ax.tick_params(axis="x", labelrotation=45)
    for ax in axes[:, 0]:
        ax.set_ylabel("probability")
    fig.suptitle('"The cat sat on the ..." : how each filter reshapes the next-word distribution')
    fig.tight_layout()
    plt.show()
    print("greedy_next picks:", words[generation.greedy_next(word_logits).item()])

# %% [markdown]
# ## A small GPT to write with
#
# Your u06 GPT, two layers, one token per character, trained for a moment on the
# course's own readings with torch's AdamW (u07 writes that loop; here it stays out
# of the way, so that this notebook needs only u06 and u08). In the quick setting
# that CI uses it trains for a few dozen steps and writes mostly noise; run the
# notebook normally (1000 steps, a few minutes on a laptop's CPU) and the text
# starts to look like the readings: common words, Markdown, code in backquotes.

# %%
readings = sorted((unit.course.exercises / "units").glob("*/README.md"))
text = "\n".join(path.read_text(encoding="utf-8") for path in readings)
chars = sorted(set(text))


def encode(s):
    return [chars.index(c) for c in s]


def decode(ids):
    return "".join(chars[i] for i in ids)


ids = torch.tensor(encode(text), dtype=torch.long)
split = int(0.9 * len(ids))
train_ids, val_ids = ids[:split], ids[split:]
V = len(chars)
STEPS = 25 if unit.quick else 1000
config = dict(vocab_size=V, block_size=64, n_layer=2, n_head=4, d_model=64, d_ff=256)
print(f"{len(text):,} characters, {V} distinct; {STEPS} training steps")

gpt = None
with unit.todo():
    torch.manual_seed(0)
    untrained = model.GPT(model.GPTConfig(**config)).eval()
    torch.manual_seed(0)
    gpt = model.GPT(model.GPTConfig(**config))
    optimizer = torch.optim.AdamW(gpt.parameters(), lr=3e-3)
    batches = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(STEPS):
        starts = torch.randint(0, len(train_ids) - 65, (16,), generator=batches).tolist()
        window = torch.stack([train_ids[s:s + 65] for s in starts])  # (16, 65)
        _, loss = gpt(window[:, :-1], window[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    gpt.eval()
    print(f"trained in {time.perf_counter() - start:.1f} s; last batch loss {loss.item():.2f} nats "
          f"(ln V = {math.log(V):.2f})")

# %% [markdown]
# ## The same model, six ways of choosing
#
# The same prompt and the same trained model, decoded by your `generate` with
# different settings. Greedy repeats itself; low temperature plays safe; high
# temperature invents; top-k and top-p cut the tail of unlikely characters that
# derails a sample.

# %%
settings = [
    ("greedy", dict(greedy=True)),
    ("temperature 0.5", dict(temperature=0.5)),
    ("temperature 1.0", dict(temperature=1.0)),
    ("temperature 1.5", dict(temperature=1.5)),
    ("top-k 5", dict(top_k=5)),
    ("top-p 0.9", dict(top_p=0.9)),
]
prompt = "The model "
n_new = 30 if unit.quick else 300
if gpt is not None:
    with unit.todo():
        for name, options in settings:
            out = generation.generate(gpt, torch.tensor([encode(prompt)]), n_new,
                                      generator=torch.Generator().manual_seed(0), **options)
            print(f"--- {name} ---")
            print(decode(out[0].tolist()))
            print()
else:
    print("Not yet: there is no trained GPT (the training cell above says why).")

# %% [markdown]
# ## The KV cache changes the speed, not the text
#
# With the cache, each step feeds one new token and reuses the keys and values of
# the ones before; without it, each step runs the model on the whole prefix again
# (section 4 of the reading). Both must write exactly the same tokens. The cache
# saves time only while the text fits in `block_size` (here 64 characters): past
# it the window slides, every cached key is stale, and each step refills the
# cache. So this comparison stops at the window's end.

# %%
if gpt is not None:
    with unit.todo():
        n_fit = config["block_size"] - len(prompt)
        seconds, outputs = {}, {}
        for use_cache in (True, False):
            start = time.perf_counter()
            outputs[use_cache] = generation.generate(gpt, torch.tensor([encode(prompt)]), n_fit, greedy=True,
                                                     use_cache=use_cache)
            seconds[use_cache] = time.perf_counter() - start
        print(f"{n_fit} greedy tokens: {seconds[True]:.3f} s with the cache, {seconds[False]:.3f} s without; "
              f"same tokens: {torch.equal(outputs[True], outputs[False])}")
else:
    print("Not yet: there is no trained GPT (the training cell above says why).")

# %% [markdown]
# ## How surprised is the model by text it never saw?
#
# Your `perplexity` on the held-out tenth of the readings, before and after the
# training above, and your `bits_per_byte` of the same loss. An untrained model is
# as unsure as a uniform guess: perplexity about V. Every character of the readings
# is not one byte (there are arrows and dashes), so bytes are counted from the text.

# %%
if gpt is not None:
    with unit.todo():
        held_out = val_ids[:1000] if unit.quick else val_ids
        n_bytes = len(decode(held_out[1:].tolist()).encode("utf-8"))  # the bytes of the scored targets
        rows = []
        for name, net in [("untrained", untrained), (f"after {STEPS} steps", gpt)]:
            ppl = generation.perplexity(net, held_out, block_size=64)
            bpb = generation.bits_per_byte(math.log(ppl) * (len(held_out) - 1), n_bytes)
            rows.append((name, ppl, bpb))
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5))
        names = [r[0] for r in rows]
        left.bar(names, [r[1] for r in rows], color=["tab:gray", "tab:blue"])
        left.axhline(V, color="black", linestyle="--", label=f"uniform guess: V = {V}")
        left.set_ylabel("perplexity")
        left.set_title("perplexity on held-out text")
        left.legend()
        right.bar(names, [r[2] for r in rows], color=["tab:gray", "tab:blue"])
        right.set_ylabel("bits per byte")
        right.set_title("bits per byte on held-out text")
        fig.tight_layout()
        plt.show()
        for name, ppl, bpb in rows:
            print(f"{name:>16}: perplexity {ppl:8.2f}, {bpb:.3f} bits per byte")
else:
    print("Not yet: there is no trained GPT (the training cell above says why).")

# %% [markdown]
# ## Next
#
# Unit u09, the capstone: your tokenizer, model, training loop and sampler,
# trained on Shakespeare with `llmfs train`.

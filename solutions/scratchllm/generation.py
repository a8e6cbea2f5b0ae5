"""Unit u08: generation and evaluation.

A language model gives, for every prefix, logits over the next token. To
*write*, pick a token from them, append it, and ask again. To *measure* the
model, score how surprised it is by text it never trained on.

Picking the next token
----------------------
Greedy decoding takes the argmax. It is deterministic, and it repeats
itself: once a loop such as "the the the" is the likeliest continuation of
itself, nothing ever leaves it. Sampling draws from the distribution
instead, usually reshaped first. Every reshaping below is a pure function
of the logits (..., V) that returns new logits; a token that must never be
drawn gets the logit -inf (probability exactly 0).

    temperature    logits / T.  T < 1 sharpens (T -> 0 tends to greedy),
                   T > 1 flattens (T -> inf tends to uniform). T must be > 0:
                   greedy is its own function.
    top-k          keep the k largest logits, set the rest to -inf. Every
                   token tied with the k-th largest value is kept too, so
                   more than k survive only when there are ties.
    top-p          (nucleus sampling, Holtzman et al. 2020) sort the tokens
                   by probability, largest first, ties in index order (a
                   stable sort); keep the shortest prefix whose mass is >= p.
                   Token i of the sorted order is kept exactly when the mass
                   *before* it is < p: the token that crosses p is kept, the
                   one after a prefix of mass exactly p is not, the first
                   token is always kept (p = 0 keeps only it) and p = 1
                   keeps every token.

sample_next applies them in this order: temperature, then top-k, then
top-p (top-p sees the probabilities of the tokens top-k left, renormalised),
then draws from softmax(logits) with the generator it is given.

The KV cache
------------
Generating token t+1 without a cache runs the model on the whole prefix
again: each new token costs O(t) projections and O(t^2) attention scores,
though the keys and values of positions 0 .. t-1 are the same as last step
(attention is causal: the past never sees the future). A KV cache keeps, for
every layer, the keys and values of the positions already fed, so each step
feeds only the newest token: its query attends to the cached keys, and its
own key and value are appended.

How the cache enters the model: through this module, not through model.py.
`forward_with_cache` runs one step of u06's GPT with the model's own
submodules (tok_emb, pos_emb, each block's norm1, attn.{q,k,v,out}_proj,
rope, norm2, ffn, then norm_f and lm_head), so GPT, its blocks and their
state_dicts stay exactly as u06 defines them. New tokens sit at positions
cache.length, cache.length + 1, ...: the learned position table and RoPE
are read at those positions, and query i may see key j when j <= start + i.

Past block_size
---------------
The model knows positions 0 .. block_size - 1 only. Like nanoGPT's
generate, `generate` then crops the context to its last block_size tokens:
a sliding window. The window's tokens sit at new positions every step, so
every cached key is stale: once the cache is full, each step re-fills a
fresh cache from the cropped window ("re-prefill"). Cached and uncached
generation therefore give the same tokens at every length; the cache only
saves time while the sequence fits in block_size.

Measuring
---------
Perplexity is exp of the mean next-token cross-entropy (in nats) on held-out
tokens: the number of equally likely tokens the model is, on average,
choosing between. A text longer than block_size is read in windows of at
most block_size tokens; with stride s each window ends s targets after the
previous one, so later targets keep block_size - s tokens of context, and
every target is scored exactly once (see `perplexity`).

Bits per byte divides the total loss by the text's length in bytes rather
than tokens (and converts nats to bits, dividing by ln 2). A tokenizer with
bigger tokens has fewer, harder targets, so per-token figures of models with
different tokenizers cannot be compared; per byte of the same text they can.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import scaled_dot_product_attention, softmax
from .data import exact_match_accuracy

# ------------------------------------------------------------------ filters


def apply_temperature(logits: Tensor,  # (..., V)
                      temperature: float,
                      ) -> Tensor:  # (..., V)
    """logits / temperature; temperature must be > 0."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}; for the argmax use greedy_next")
    return logits / temperature


def top_k_filter(logits: Tensor,  # (..., V)
                 k: int,
                 ) -> Tensor:  # (..., V)
    """Keep the logits >= the k-th largest (ties at it kept), the rest -inf. k >= V keeps all."""
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if k >= logits.size(-1):
        return logits.clone()
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor,  # (..., V)
                 p: float,
                 ) -> Tensor:  # (..., V)
    """Keep the smallest most-likely set of mass >= p (the crossing token kept), the rest -inf."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"top_p must be between 0 and 1, got {p}")
    if p == 1.0:
        return logits.clone()
    probs = softmax(logits, dim=-1)
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    keep_sorted = mass_before < p
    keep_sorted[..., 0] = True
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


# ------------------------------------------------------------------ choosing a token


def greedy_next(logits: Tensor,  # (..., V)
                ) -> Tensor:  # (...) int64
    """The index of the largest logit (the first one if several are equal)."""
    return torch.argmax(logits, dim=-1)


def sample_next(logits: Tensor,  # (..., V)
                *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                generator: torch.Generator | None,
                ) -> Tensor:  # (...) int64
    """Draw one token per row: temperature, then top-k, then top-p, then softmax and a draw."""
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = softmax(logits, dim=-1)
    flat = probs.reshape(-1, probs.size(-1))
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


# ------------------------------------------------------------------ the KV cache


class KVCache:
    """The keys and values of every position fed so far, one pair per layer.

    keys[i] and values[i] are None until layer i is first fed, then
    (B, n_heads, length, head_dim): RoPE already applied to the keys.
    """

    def __init__(self, n_layer: int):  # llmfs: given
        self.keys: list[Tensor | None] = [None] * n_layer
        self.values: list[Tensor | None] = [None] * n_layer

    @property
    def length(self) -> int:
        """How many positions the cache holds (those of the last layer)."""
        return 0 if self.keys[-1] is None else self.keys[-1].size(-2)

    def update(self, layer: int,
               k: Tensor,  # (B, H, T_new, head_dim)
               v: Tensor,  # (B, H, T_new, head_dim)
               ) -> tuple[Tensor, Tensor]:  # all keys, all values: (B, H, T_old + T_new, head_dim)
        """Append the new keys and values of `layer` along time; return everything cached for it."""
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=-2)
            v = torch.cat([self.values[layer], v], dim=-2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


def attend_with_cache(block: nn.Module,  # a u05 DecoderBlock
                      h: Tensor,  # (B, T_new, d_model), already normalised by block.norm1
                      cache: KVCache, layer: int,
                      positions: Tensor,  # (T_new,) int64: start .. start + T_new - 1
                      ) -> Tensor:  # (B, T_new, d_model)
    """The block's causal self-attention for the new positions, over cached and new keys."""
    attn = block.attn
    q = attn.split_heads(attn.q_proj(h))
    k = attn.split_heads(attn.k_proj(h))
    v = attn.split_heads(attn.v_proj(h))
    if block.rope is not None:
        q, k = block.rope(q, positions), block.rope(k, positions)
    k, v = cache.update(layer, k, v)
    start = int(positions[0])
    mask = torch.ones(h.size(1), k.size(-2), dtype=torch.bool, device=h.device).tril(diagonal=start)
    y = scaled_dot_product_attention(q, k, v, mask=mask)
    return attn.dropout(attn.out_proj(attn.merge_heads(y)))


def forward_with_cache(model: nn.Module,  # a u06 GPT
                       idx: Tensor,  # (B, T_new) int64: the tokens after those in the cache
                       cache: KVCache,
                       ) -> Tensor:  # (B, T_new, vocab_size)
    """GPT's forward pass for new tokens at positions cache.length onwards; fills the cache."""
    start, T = cache.length, idx.size(1)
    if start + T > model.config.block_size:
        raise ValueError(f"{start} cached + {T} new positions exceed block_size={model.config.block_size}")
    positions = torch.arange(start, start + T, device=idx.device)
    x = model.tok_emb(idx)
    if model.pos_emb is not None:
        x = x + model.pos_emb(positions)
    x = model.drop(x)
    for layer, block in enumerate(model.blocks):
        x = x + attend_with_cache(block, block.norm1(x), cache, layer, positions)
        x = x + block.ffn(block.norm2(x))
    return model.lm_head(model.norm_f(x))


# ------------------------------------------------------------------ decoding


@torch.no_grad()
def generate(model: nn.Module,  # a u06 GPT, in eval mode
             idx: Tensor,  # (B, T) int64, the prompt
             max_new_tokens: int,
             *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             greedy: bool = False, generator: torch.Generator | None = None, use_cache: bool = True,
             ) -> Tensor:  # (B, T + max_new_tokens) int64
    """Append max_new_tokens tokens to idx, greedily or by sample_next.

    The model reads at most its last block_size tokens (a sliding window).
    With use_cache, the prompt is fed once and each step feeds one token;
    once the window is full, each step re-fills a new cache from it.
    Sampling draws with `generator` (torch's global one if it is None).
    """
    block_size = model.config.block_size
    cache = None
    for _ in range(max_new_tokens):
        if not use_cache:
            logits = model(idx[:, -block_size:])[0]
        elif cache is None or cache.length >= block_size:
            cache = KVCache(len(model.blocks))
            logits = forward_with_cache(model, idx[:, -block_size:], cache)
        else:
            logits = forward_with_cache(model, idx[:, -1:], cache)
        last = logits[:, -1, :]
        if greedy:
            nxt = greedy_next(last)
        else:
            nxt = sample_next(last, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        idx = torch.cat([idx, nxt[:, None]], dim=1)
    return idx


@torch.no_grad()
def greedy_decode(model: nn.Module,  # a u06 Seq2SeqTransformer, in eval mode
                  src: Tensor,  # (B, S) int64
                  bos: int, eos: int, max_len: int,
                  ) -> Tensor:  # (B, L) int64, L <= max_len, BOS not included
    """Argmax decoding for the encoder-decoder, each sequence until it emits eos.

    The source is encoded once. Each step appends the argmax token to every
    sequence; a sequence that has emitted eos gets eos from then on. Stops
    when every sequence has emitted eos, or after max_len tokens.
    """
    memory = model.encode(src)
    out = torch.full((src.size(0), 1), bos, dtype=torch.long, device=src.device)
    done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        nxt = greedy_next(model.decode(out, memory)[:, -1, :])
        nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
        out = torch.cat([out, nxt[:, None]], dim=1)
        done = done | (nxt == eos)
        if bool(done.all()):
            break
    return out[:, 1:]


# ------------------------------------------------------------------ evaluation


@torch.no_grad()
def perplexity(model: nn.Module,  # a u06 GPT, in eval mode
               tokens: Tensor,  # (N,) int64, N >= 2
               block_size: int, stride: int | None = None,
               ) -> float:
    """exp(mean cross-entropy of tokens[1:]), each target scored once, in windows.

    Window w reads tokens[begin_w : end_w] (at most block_size tokens) and
    scores the targets tokens[t] for end_{w-1} < t <= end_w, where end_0 =
    min(block_size, N - 1) (the first window scores all its targets),
    end_w = min(end_{w-1} + stride, N - 1) and begin_w = max(0, end_w -
    block_size). stride defaults to block_size (windows that do not overlap);
    1 <= stride <= block_size.
    """
    stride = block_size if stride is None else stride
    if not 1 <= stride <= block_size:
        raise ValueError(f"stride must be between 1 and block_size={block_size}, got {stride}")
    N = tokens.numel()
    if N < 2:
        raise ValueError(f"need at least 2 tokens (one target), got {N}")
    tokens = tokens.reshape(1, N)
    total, scored = 0.0, 0
    end = min(block_size, N - 1)
    prev_end = 0
    while True:
        begin = max(0, end - block_size)
        logits = model(tokens[:, begin:end])[0][0]  # (end - begin, V): row j predicts tokens[begin + j + 1]
        new = end - prev_end
        total += float(F.cross_entropy(logits[-new:], tokens[0, end - new + 1:end + 1], reduction="sum"))
        scored += new
        if end == N - 1:
            break
        prev_end, end = end, min(end + stride, N - 1)
    return math.exp(total / scored)


def bits_per_byte(total_nats: float, n_bytes: int) -> float:
    """A text's total loss in nats, as bits per byte of that text: total_nats / (ln 2 * n_bytes)."""
    if n_bytes <= 0:
        raise ValueError(f"n_bytes must be > 0, got {n_bytes}")
    return total_nats / (math.log(2) * n_bytes)


def exact_match(model: nn.Module,  # a u06 GPT, in eval mode
                pairs: Sequence[tuple[str, str]],  # (input, target), e.g. scratchllm.data.addition_pairs
                encode: Callable[[str], list[int]],
                decode: Callable[[list[int]], str],
                ) -> float:
    """The fraction of pairs whose target the model writes exactly, greedily.

    For each pair the prompt is encode(input); the model greedily generates
    len(encode(target)) tokens after it, and decode(those tokens) must equal
    target. Pairs of equal lengths are decoded together, as one batch.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    prompts = [encode(inp) for inp, _ in pairs]
    for i, (_, target) in enumerate(pairs):
        groups.setdefault((len(prompts[i]), len(encode(target))), []).append(i)
    predictions = [""] * len(pairs)
    for (n_in, n_out), members in groups.items():
        idx = torch.tensor([prompts[i] for i in members], dtype=torch.long)
        out = generate(model, idx, n_out, greedy=True)
        for row, i in enumerate(members):
            predictions[i] = decode(out[row, n_in:].tolist())
    return exact_match_accuracy(predictions, [t for _, t in pairs])

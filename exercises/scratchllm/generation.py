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
    # TODO(u08): Raise ValueError (say that greedy_next is the argmax) when
    # temperature <= 0; otherwise divide the logits by the temperature.
    raise NotImplementedError("u08: apply_temperature")


def top_k_filter(logits: Tensor,  # (..., V)
                 k: int,
                 ) -> Tensor:  # (..., V)
    """Keep the logits >= the k-th largest (ties at it kept), the rest -inf. k >= V keeps all."""
    # TODO(u08): Implement top-k filtering along the last dim.
    #   1. k < 1 is a ValueError; k >= V keeps every logit (return a copy).
    #   2. kth = the k-th largest value of each row (torch.topk), keepdim.
    #   3. set every logit < kth to -inf; ties with kth survive.
    # Return a new tensor: never change `logits` in place.
    raise NotImplementedError("u08: top_k_filter")


def top_p_filter(logits: Tensor,  # (..., V)
                 p: float,
                 ) -> Tensor:  # (..., V)
    """Keep the smallest most-likely set of mass >= p (the crossing token kept), the rest -inf."""
    # TODO(u08): Implement nucleus (top-p) filtering along the last dim.
    #   1. p outside [0, 1] is a ValueError; p == 1 keeps every logit (a copy).
    #   2. probs = your softmax (u04); sort each row descending with a
    #      *stable* sort (torch.sort(..., stable=True)), keeping the order.
    #   3. mass before each sorted token = cumulative sum minus the token.
    #      Keep a token when its mass before is < p; always keep the first.
    #   4. put the keep flags back in vocabulary order (scatter with the
    #      order) and set the logits of the others to -inf.
    raise NotImplementedError("u08: top_p_filter")


# ------------------------------------------------------------------ choosing a token


def greedy_next(logits: Tensor,  # (..., V)
                ) -> Tensor:  # (...) int64
    """The index of the largest logit (the first one if several are equal)."""
    # TODO(u08): the argmax over the last dim.
    raise NotImplementedError("u08: greedy_next")


def sample_next(logits: Tensor,  # (..., V)
                *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                generator: torch.Generator | None,
                ) -> Tensor:  # (...) int64
    """Draw one token per row: temperature, then top-k, then top-p, then softmax and a draw."""
    # TODO(u08): Filter in the documented order, then draw.
    #   1. apply_temperature, then top_k_filter (if top_k is given), then
    #      top_p_filter (if top_p is given).
    #   2. probs = your softmax (u04) of the filtered logits: probabilities,
    #      not logits, are what you draw from.
    #   3. torch.multinomial(probs as (rows, V), 1, generator=generator),
    #      reshaped to logits.shape[:-1].
    raise NotImplementedError("u08: sample_next")


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
        # TODO(u08): 0 before anything is cached, else the time length of the
        # last layer's keys.
        raise NotImplementedError("u08: KVCache.length")

    def update(self, layer: int,
               k: Tensor,  # (B, H, T_new, head_dim)
               v: Tensor,  # (B, H, T_new, head_dim)
               ) -> tuple[Tensor, Tensor]:  # all keys, all values: (B, H, T_old + T_new, head_dim)
        """Append the new keys and values of `layer` along time; return everything cached for it."""
        # TODO(u08): Concatenate the new k and v after the cached ones along
        # the time axis (dim -2), store the results, return them.
        raise NotImplementedError("u08: KVCache.update")


def attend_with_cache(block: nn.Module,  # a u05 DecoderBlock
                      h: Tensor,  # (B, T_new, d_model), already normalised by block.norm1
                      cache: KVCache, layer: int,
                      positions: Tensor,  # (T_new,) int64: start .. start + T_new - 1
                      ) -> Tensor:  # (B, T_new, d_model)
    """The block's causal self-attention for the new positions, over cached and new keys."""
    # TODO(u08): u05's self_attention, with a cache.
    #   1. q, k, v = block.attn's projections of h, split into heads.
    #   2. with RoPE (block.rope is not None), rotate q and k at `positions`.
    #   3. k, v = cache.update(layer, k, v): now every position's keys.
    #   4. mask (T_new, T_all): new query i (at position start + i) may see
    #      key j when j <= start + i (tril with diagonal=start).
    #   5. your scaled_dot_product_attention, merge heads, out_proj, dropout.
    raise NotImplementedError("u08: attend_with_cache")


def forward_with_cache(model: nn.Module,  # a u06 GPT
                       idx: Tensor,  # (B, T_new) int64: the tokens after those in the cache
                       cache: KVCache,
                       ) -> Tensor:  # (B, T_new, vocab_size)
    """GPT's forward pass for new tokens at positions cache.length onwards; fills the cache."""
    # TODO(u08): GPT.forward for positions start .. start + T_new - 1,
    # where start = cache.length.
    #   1. start + T_new > model.config.block_size is a ValueError.
    #   2. x = model.tok_emb(idx) (+ model.pos_emb(positions), learned
    #      positions only), then model.drop.
    #   3. for each block: x = x + attend_with_cache(block, block.norm1(x), ...)
    #      and x = x + block.ffn(block.norm2(x)).
    #   4. logits = model.lm_head(model.norm_f(x)).
    raise NotImplementedError("u08: forward_with_cache")


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
    # TODO(u08): The decoding loop, max_new_tokens times:
    #   1. logits of the last position:
    #      - use_cache=False: model(idx[:, -block_size:]) (the whole window);
    #      - use_cache=True, first step or cache.length >= block_size: a new
    #        KVCache(len(model.blocks)) filled by forward_with_cache on
    #        idx[:, -block_size:];
    #      - otherwise: forward_with_cache on idx[:, -1:] only.
    #   2. the next token: greedy_next, or sample_next with the options.
    #   3. append it to idx (torch.cat along dim 1).
    raise NotImplementedError("u08: generate")


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
    # TODO(u08): Encode once (model.encode); start every sequence with bos;
    # then up to max_len times: the argmax of model.decode(out, memory) at
    # the last position, eos instead for sequences already done, append,
    # mark sequences that just emitted eos as done, stop when all are.
    # Return the tokens after bos.
    raise NotImplementedError("u08: greedy_decode")


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
    # TODO(u08): Windows as in the docstring.
    #   1. stride defaults to block_size; outside [1, block_size] is a
    #      ValueError, and so is N < 2.
    #   2. for each window: logits = model(tokens[begin:end] as (1, T)); row j
    #      predicts tokens[begin + j + 1]. Add the summed cross-entropy of
    #      the window's new targets only (its last end_w - end_{w-1} rows).
    #   3. return exp(total / number of targets), a float.
    raise NotImplementedError("u08: perplexity")


def bits_per_byte(total_nats: float, n_bytes: int) -> float:
    """A text's total loss in nats, as bits per byte of that text: total_nats / (ln 2 * n_bytes)."""
    # TODO(u08): nats to bits (divide by ln 2), then per byte; n_bytes <= 0
    # is a ValueError.
    raise NotImplementedError("u08: bits_per_byte")


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
    # TODO(u08): For each (input, target): prompt = encode(input), n =
    # len(encode(target)); generate(model, prompt as (1, T), n, greedy=True);
    # prediction = decode(the n new tokens as a list of ints). Score with
    # scratchllm.data's exact_match_accuracy. (Batching prompts of equal
    # lengths together is faster, and optional.)
    raise NotImplementedError("u08: exact_match")

"""u08's tests catch the bugs students really make in decoding and evaluation.

Each mutant is the reference with one realistic bug planted by a text
substitution (see tests/test_mutants.py for the idea). A substitution
replaces every occurrence of its text in the module named.
"""

import pytest

from kit import assert_mutant_caught

FILTERS = ("    logits = apply_temperature(logits, temperature)\n"
           "    if top_k is not None:\n        logits = top_k_filter(logits, top_k)\n"
           "    if top_p is not None:\n        logits = top_p_filter(logits, top_p)\n")
KTH = "    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)\n"
STEP = "            logits = forward_with_cache(model, idx[:, -1:], cache)\n"

# (description, module, old text, new text)
MUTANTS = [
    # filters
    ("temperature multiplies the logits", "generation", "return logits / temperature", "return logits * temperature"),
    ("temperature 0 accepted (division by zero)", "generation", "if temperature <= 0:", "if temperature < 0:"),
    ("top-k keeps k + 1 tokens", "generation",
     "torch.topk(logits, k, dim=-1)", "torch.topk(logits, min(k + 1, logits.size(-1)), dim=-1)"),
    ("top-k keeps k - 1 tokens", "generation",
     "torch.topk(logits, k, dim=-1)", "torch.topk(logits, max(k - 1, 1), dim=-1)"),
    ("apply_temperature divides its input in place (sampling twice from one tensor differs)", "generation",
     "return logits / temperature", "return logits.div_(temperature)"),
    ("top-k filters its input in place", "generation",
     "logits.masked_fill(logits < kth,", "logits.masked_fill_(logits < kth,"),
    ("top-k drops the k-th value itself", "generation", "logits.masked_fill(logits < kth,", "logits.masked_fill(logits <= kth,"),
    ("top-k keeps exactly k tokens, dropping ties at the k-th value", "generation",
     KTH + "    return logits.masked_fill(logits < kth, float(\"-inf\"))",
     "    keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, torch.topk(logits, k, dim=-1).indices, True)\n"
     "    return logits.masked_fill(~keep, float(\"-inf\"))"),
    ("top-k with k >= V fails instead of keeping everything", "generation",
     "    if k >= logits.size(-1):\n        return logits.clone()\n", ""),
    ("top-p excludes the token that crosses p", "generation",
     "mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs", "mass_before = torch.cumsum(sorted_probs, dim=-1)"),
    ("top-p keeps zero tokens when p is small (no first token forced)", "generation",
     "    keep_sorted[..., 0] = True\n", ""),
    ("top-p keeps an extra token when the mass equals p exactly", "generation",
     "keep_sorted = mass_before < p", "keep_sorted = mass_before <= p"),
    ("top-p with p = 1 keeps only the argmax", "generation",
     "    if p == 1.0:\n        return logits.clone()",
     "    if p == 1.0:\n        return logits.masked_fill(logits < logits.amax(-1, keepdim=True), float(\"-inf\"))"),
    ("top-p sorts ascending", "generation", "descending=True, stable=True", "descending=False, stable=True"),
    ("top-p ties broken largest index first", "generation",
     "    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)\n",
     "    sorted_probs, order = torch.sort(probs.flip(-1), dim=-1, descending=True, stable=True)\n"
     "    order = probs.size(-1) - 1 - order\n"),
    ("top-p flags left in sorted order", "generation",
     "keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)", "keep = keep_sorted"),
    ("top-p probabilities from exp(logits) / sum (overflow)", "generation",
     "    probs = softmax(logits, dim=-1)\n    sorted_probs",
     "    probs = logits.exp() / logits.exp().sum(-1, keepdim=True)\n    sorted_probs"),
    # choosing a token
    ("greedy_next takes the argmax over the first dim", "generation",
     "return torch.argmax(logits, dim=-1)", "return torch.argmax(logits, dim=0)"),
    ("temperature applied after the filters", "generation", FILTERS,
     FILTERS.replace("    logits = apply_temperature(logits, temperature)\n", "")
     + "    logits = apply_temperature(logits, temperature)\n"),
    ("top-p applied before top-k", "generation", FILTERS,
     "    logits = apply_temperature(logits, temperature)\n"
     "    if top_p is not None:\n        logits = top_p_filter(logits, top_p)\n"
     "    if top_k is not None:\n        logits = top_k_filter(logits, top_k)\n"),
    ("temperature ignored when sampling", "generation",
     "logits = apply_temperature(logits, temperature)\n    if top_k", "logits = apply_temperature(logits, 1.0)\n    if top_k"),
    ("sampling in proportion to the logits, not their softmax", "generation",
     "    probs = softmax(logits, dim=-1)\n    flat", "    probs = logits.clamp_min(0)\n    flat"),
    ("sampling from exp(logits) without the max subtracted (overflow)", "generation",
     "    probs = softmax(logits, dim=-1)\n    flat", "    probs = logits.exp()\n    flat"),
    ("sampling ignores the generator", "generation",
     "torch.multinomial(flat, 1, generator=generator)", "torch.multinomial(flat, 1)"),
    # the KV cache
    ("KVCache.update forgets the past (keeps only the new keys and values)", "generation",
     "            k = torch.cat([self.keys[layer], k], dim=-2)\n            v = torch.cat([self.values[layer], v], dim=-2)\n",
     ""),
    ("cache appends the keys twice", "generation",
     "    k, v = cache.update(layer, k, v)\n", "    cache.update(layer, k, v)\n    k, v = cache.update(layer, k, v)\n"),
    ("cache stacks layers on one list", "generation",
     "k, v = cache.update(layer, k, v)", "k, v = cache.update(0, k, v)"),
    ("new tokens at positions 0.. instead of cache.length..", "generation",
     "positions = torch.arange(start, start + T, device=idx.device)", "positions = torch.arange(T, device=idx.device)"),
    ("RoPE at the wrong offset in cached mode", "generation",
     "q, k = block.rope(q, positions), block.rope(k, positions)",
     "q, k = block.rope(q, positions - positions[0]), block.rope(k, positions - positions[0])"),
    ("cached mask not offset by the cache length", "generation", ".tril(diagonal=start)", ".tril()"),
    ("no causal mask in the cached attention", "generation",
     "y = scaled_dot_product_attention(q, k, v, mask=mask)", "y = scaled_dot_product_attention(q, k, v)"),
    ("cached step skips the final norm", "generation",
     "    return model.lm_head(model.norm_f(x))\n", "    return model.lm_head(x)\n"),
    # generation
    ("generate recomputes the full prefix every step", "generation",
     STEP, "            cache = KVCache(len(model.blocks))\n"
           "            logits = forward_with_cache(model, idx[:, -block_size:], cache)\n"),
    ("generate without the cache does not crop to block_size", "generation",
     "logits = model(idx[:, -block_size:])[0]", "logits = model(idx)[0]"),
    ("generate with the cache runs past block_size", "generation",
     "cache is None or cache.length >= block_size", "cache is None or cache.length > block_size"),
    ("generate feeds a prompt longer than block_size uncropped, and refills with everything", "generation",
     "logits = forward_with_cache(model, idx[:, -block_size:], cache)",
     "logits = forward_with_cache(model, idx, cache)"),
    ("generate ignores top_k", "generation",
     "temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)",
     "temperature=temperature, top_p=top_p, generator=generator)"),
    # encoder-decoder
    ("greedy decode does not stop at eos", "generation",
     "        nxt = torch.where(done, torch.full_like(nxt, eos), nxt)\n", ""),
    ("greedy decode stops when the first sequence emits eos", "generation",
     "if bool(done.all()):", "if bool(done.any()):"),
    ("greedy decode never stops early", "generation",
     "        if bool(done.all()):\n            break\n", ""),
    ("greedy decode returns bos too", "generation", "    return out[:, 1:]\n", "    return out\n"),
    # evaluation
    ("perplexity scores overlapping targets twice", "generation", "new = end - prev_end", "new = end - begin"),
    ("perplexity skips the first window's early targets", "generation",
     "    prev_end = 0\n", "    prev_end = end - stride\n"),
    ("perplexity scores each logit against the token it read", "generation",
     "tokens[0, end - new + 1:end + 1]", "tokens[0, end - new:end]"),
    ("perplexity's later windows read only stride tokens of context", "generation",
     "begin = max(0, end - block_size)", "begin = max(0, end - stride)"),
    ("perplexity returns the mean loss, not its exp", "generation",
     "return math.exp(total / scored)", "return total / scored"),
    ("perplexity accepts stride 0 and stride > block_size", "generation",
     "if not 1 <= stride <= block_size:", "if stride < 0:"),
    ("bits per byte in nats", "generation",
     "return total_nats / (math.log(2) * n_bytes)", "return total_nats / n_bytes"),
    ("bits per byte with log base 10", "generation",
     "return total_nats / (math.log(2) * n_bytes)", "return total_nats / (math.log10(2) * n_bytes)"),
    ("exact_match compares the prompt and the answer with the target", "generation",
     "decode(out[row, n_in:].tolist())", "decode(out[row].tolist())"),
    ("exact_match generates one token too few", "generation",
     "out = generate(model, idx, n_out, greedy=True)", "out = generate(model, idx, n_out - 1, greedy=True)"),
    ("exact_match samples instead of greedy", "generation",
     "out = generate(model, idx, n_out, greedy=True)", "out = generate(model, idx, n_out)"),
]


@pytest.mark.parametrize("description, module, old, new", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_public_tests_catch_the_mutant(tmp_path, description, module, old, new):
    assert_mutant_caught(tmp_path, "u08", module, description, old, new)


# Bugs the hidden tests catch on their own (the public tests miss the first).
HIDDEN_MUTANTS = [
    ("top-p filters its input in place", "generation",
     "    return logits.masked_fill(~keep, float(\"-inf\"))", "    return logits.masked_fill_(~keep, float(\"-inf\"))"),
    ("perplexity's later windows read only stride tokens of context", "generation",
     "begin = max(0, end - block_size)", "begin = max(0, end - stride)"),
]


@pytest.mark.parametrize("description, module, old, new", HIDDEN_MUTANTS, ids=[m[0] for m in HIDDEN_MUTANTS])
def test_hidden_tests_catch_the_mutant(tmp_path, description, module, old, new):
    assert_mutant_caught(tmp_path, "u08", module, description, old, new, tests="grader/hidden")

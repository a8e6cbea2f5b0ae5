"""Hidden tests for unit u08, generation and evaluation: never shipped to students.

Stronger than the public tests, with the reference as the oracle: filters on
random logits of many shapes (ties, -inf, float64, p and k at random);
cached logits for every combination of positions, norm and feed-forward,
from reference checkpoints; greedy generation equal to the reference's,
prompts longer than block_size included; sampled generation that never
leaves the support the reference's filters allow; perplexity of a model
that uses its context, for many lengths and strides; exact_match against
the reference's greedy answers; greedy_decode equal to the reference's.
"""

import itertools
import math

import pytest
import torch

from grader.testing import Mismatch, assert_close, assert_equal

pytestmark = pytest.mark.u08

BASE = dict(vocab_size=29, block_size=12, n_layer=2, n_head=2, d_model=16, d_ff=24, dropout=0.0,
            positions="learned", norm="layer", ffn="gelu", tie_weights=True)
COMBOS = list(itertools.product(["learned", "rope"], ["layer", "rms"], ["gelu", "swiglu"]))
S2S = dict(vocab_size=11, d_model=16, n_head=2, n_encoder_layers=2, n_decoder_layers=1, d_ff=24)


# ---------------------------------------------------------------- probes

def fill_(model, seed):
    """Parameters drawn again in name order: matrices N(0, 1/fan_in), vectors near 1 (gains) or 0 (biases)."""
    g = torch.Generator().manual_seed(seed)
    seen = set()
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(remove_duplicate=False)):
            if id(p) in seen:
                continue
            seen.add(id(p))
            z = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)
            if p.dim() >= 2:
                p.copy_(z * p.shape[-1] ** -0.5)
            else:
                p.copy_(z * 0.1 + (0.0 if name.endswith("bias") else 1.0))
    return model


def new_model(pkg, kind, cfg):
    torch.manual_seed(0)
    if kind == "gpt":
        return pkg.model.GPT(pkg.model.GPTConfig(**cfg))
    return pkg.model.Seq2SeqTransformer(**cfg)


def checkpoint_probe(pkg, kind, cfg, seed):
    return {k: v.clone() for k, v in fill_(new_model(pkg, kind, cfg), seed).state_dict().items()}


def loaded(pkg, kind, cfg, state):
    model = new_model(pkg, kind, cfg)
    model.load_state_dict(state)
    return model.eval()


def filter_probe(pkg, name, logits, value):
    return getattr(pkg.generation, name)(logits, value)


def cached_probe(pkg, cfg, state, idx, chunk_sizes):
    model = loaded(pkg, "gpt", cfg, state)
    cache = pkg.generation.KVCache(cfg["n_layer"])
    out, start = [], 0
    with torch.no_grad():
        for n in chunk_sizes:
            out.append(pkg.generation.forward_with_cache(model, idx[:, start:start + n], cache))
            start += n
    return torch.cat(out, dim=1), cache.length


def full_logits_probe(pkg, cfg, state, idx):
    with torch.no_grad():
        return loaded(pkg, "gpt", cfg, state)(idx)[0]


def generate_probe(pkg, cfg, state, prompt, n_new, seed, use_cache, options):
    g = torch.Generator().manual_seed(seed)
    return pkg.generation.generate(loaded(pkg, "gpt", cfg, state), prompt, n_new, generator=g,
                                   use_cache=use_cache, **options)


def support_probe(pkg, cfg, state, seq, T0, options):
    """For each generated position of seq: which tokens the documented filters leave,
    given the logits of the context window that predicted it."""
    model = loaded(pkg, "gpt", cfg, state)
    G, bs = pkg.generation, cfg["block_size"]
    allowed = []
    with torch.no_grad():
        for e in range(T0, seq.size(1)):
            logits = G.apply_temperature(model(seq[:, max(0, e - bs):e])[0][:, -1], options.get("temperature", 1.0))
            if options.get("top_k") is not None:
                logits = G.top_k_filter(logits, options["top_k"])
            if options.get("top_p") is not None:
                logits = G.top_p_filter(logits, options["top_p"])
            allowed.append(torch.isfinite(logits))
    return torch.stack(allowed, dim=1)  # (B, n_new, V)


def sample_probe(pkg, logits, seed, options):
    return pkg.generation.sample_next(logits, generator=torch.Generator().manual_seed(seed), **options)


def perplexity_probe(pkg, cfg, state, tokens, block_size, strides):
    model = loaded(pkg, "gpt", cfg, state)
    return [pkg.generation.perplexity(model, tokens, block_size, s) for s in strides]


def encode_digits(text):
    return [int(c) for c in text]


def decode_digits(ids):
    return "".join(str(i) for i in ids)


def exact_match_probe(pkg, cfg, state, pairs):
    return pkg.generation.exact_match(loaded(pkg, "gpt", cfg, state), pairs, encode_digits, decode_digits)


def greedy_decode_probe(pkg, cfg, state, src, bos, eos, max_len):
    return pkg.generation.greedy_decode(loaded(pkg, "s2s", cfg, state), src, bos, eos, max_len)


def call_probe(pkg, name, args):
    try:
        return {"value": getattr(pkg.generation, name)(*args)}
    except ValueError as e:
        return {"error": str(e)}


# ---------------------------------------------------------------- the judge's side

def check(ok, summary, detail="", hint=None):
    if not ok:
        raise Mismatch(summary, detail, hint)


def gpt_cfg(**changes):
    return {**BASE, **changes}


def combo_cfg(positions, norm, ffn, **changes):
    return gpt_cfg(positions=positions, norm=norm, ffn=ffn, tie_weights=(norm == "layer"), **changes)


def assert_same_filter(got, want, what, hint):
    check(isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == want.dtype,
          f"{what}: expected a {want.dtype} tensor of shape {tuple(want.shape)}", hint=hint)
    assert_equal(torch.isfinite(got).tolist(), torch.isfinite(want).tolist(), what=f"{what}: tokens kept", hint=hint)
    fin = torch.isfinite(want)
    check(bool((got[fin] == want[fin]).all()), f"{what}: kept logits changed")


def random_logits(rng, shape, dtype=torch.float32, ties=False, neg_inf=False):
    x = torch.randn(shape, generator=rng, dtype=torch.float64)
    if ties:
        x = torch.round(x * 2) / 2  # many equal values
    if neg_inf:
        x[torch.rand(shape, generator=rng) < 0.2] = float("-inf")
        x[..., 0] = 0.0  # every row keeps a finite logit
    return x.to(dtype)


# ---------------------------------------------------------------- filters

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_top_k_matches_reference_on_random_logits(student, reference, rng, dtype):
    for shape, ties, neg_inf in [((7, 13), False, False), ((2, 3, 9), True, False), ((5, 11), True, True),
                                 ((13,), False, True)]:
        logits = random_logits(rng, shape, dtype, ties, neg_inf)
        for k in sorted({1, 2, 3, shape[-1] - 1, shape[-1], shape[-1] + 4}):
            got = student.run(filter_probe, "top_k_filter", logits, k)
            want = reference.run(filter_probe, "top_k_filter", logits, k)
            assert_same_filter(got, want, f"top_k_filter(logits {tuple(shape)} {dtype}, k={k}"
                               f"{', ties' if ties else ''}{', some -inf' if neg_inf else ''})",
                               hint="keep every logit >= the k-th largest of its row")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_top_p_matches_reference_on_random_logits(student, reference, rng, dtype):
    for shape, ties, neg_inf in [((7, 13), False, False), ((2, 3, 9), True, False), ((5, 11), True, True),
                                 ((13,), False, True)]:
        logits = random_logits(rng, shape, dtype, ties, neg_inf) * 2
        for p in [0.0, 0.05, 0.3, 0.5, 0.77, 0.9, 0.999, 1.0]:
            got = student.run(filter_probe, "top_p_filter", logits, p)
            want = reference.run(filter_probe, "top_p_filter", logits, p)
            assert_same_filter(got, want, f"top_p_filter(logits {tuple(shape)} {dtype}, p={p}"
                               f"{', ties' if ties else ''}{', some -inf' if neg_inf else ''})",
                               hint="keep a token when the mass before it (sorted descending, stable) is < p")


def test_top_p_ties_in_index_order(student):
    logits = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]])  # four tokens tied at the top
    got = student.run(filter_probe, "top_p_filter", logits, 0.3)
    e = math.e
    # each of the four top tokens has probability e / (4e + 4) ~ 0.18: two are needed to reach 0.3
    assert e / (4 * e + 4) < 0.3 < 2 * e / (4 * e + 4)
    want = torch.tensor([[False, True, False, True, False, False, False, False]])
    assert_equal(torch.isfinite(got).tolist(), want.tolist(), what="top_p_filter with tied top tokens, p=0.3",
                 hint="equal probabilities keep their index order: sort with stable=True")


def filter_and_input_probe(pkg, name, logits, value):
    out = getattr(pkg.generation, name)(logits, value)
    return out, logits


def test_filters_accept_a_single_row_and_leave_the_input_alone(student, reference, rng):
    logits = torch.randn(10, generator=rng)
    for name, value in [("top_k_filter", 4), ("top_p_filter", 0.6), ("apply_temperature", 0.8)]:
        got, after = student.run(filter_and_input_probe, name, logits.clone(), value)
        want = reference.run(filter_probe, name, logits, value)
        assert_close(got, want, atol=1e-6, rtol=1e-6, what=f"{name}(logits (10,), {value})")
        check(torch.equal(after, logits), f"{name} changed its input", hint="return a new tensor")


def test_sampling_with_all_filters_follows_the_filtered_softmax(student, reference, rng):
    logits = torch.randn(1, 9, generator=rng) * 1.5
    options = dict(temperature=0.8, top_k=6, top_p=0.85)
    filtered = reference.run(filter_probe, "top_p_filter",
                             reference.run(filter_probe, "top_k_filter", logits / 0.8, 6), 0.85)
    want = torch.softmax(filtered.double(), dim=-1)[0]
    n = 6000
    draws = student.run(sample_probe, logits.expand(n, 9).contiguous(), 3, options)
    freq = torch.bincount(draws, minlength=9).double() / n
    check(bool((freq[want == 0] == 0).all()), "sample_next drew tokens the filters removed")
    assert_close(freq, want, atol=0.04, rtol=0, check_dtype=False,
                 what=f"frequencies of {n} draws with {options}",
                 hint="temperature, then top-k, then top-p, then draw from the softmax of what is left")


# ---------------------------------------------------------------- the KV cache

@pytest.mark.parametrize("positions, norm, ffn", COMBOS, ids=["-".join(c) for c in COMBOS])
def test_cached_logits_equal_reference_full_forward(student, reference, rng, positions, norm, ffn):
    cfg = combo_cfg(positions, norm, ffn)
    state = reference.run(checkpoint_probe, "gpt", cfg, 21)
    idx = torch.randint(0, cfg["vocab_size"], (2, 12), generator=rng)
    sizes, left = [], 12
    while left:
        n = min(left, int(torch.randint(1, 5, (1,), generator=rng)))
        sizes.append(n)
        left -= n
    got, length = student.run(cached_probe, cfg, state, idx, sizes)
    want = reference.run(full_logits_probe, cfg, state, idx)
    assert_close(got, want, atol=1e-5, rtol=1e-4,
                 what=f"forward_with_cache in chunks {sizes} vs the reference's full forward "
                      f"({positions}, {norm}, {ffn})")
    assert_equal(length, 12, what="cache.length after 12 positions")


def test_forward_with_cache_refuses_positions_past_block_size(student):
    cfg = gpt_cfg(block_size=6)
    got = student.run(cache_overflow_probe, cfg)
    check("error" in got, "forward_with_cache with 5 cached and 2 new positions, block_size 6, must raise ValueError",
          hint="the model has no position 6; generate crops and refills instead")


def cache_overflow_probe(pkg, cfg):
    model = loaded(pkg, "gpt", cfg, checkpoint_probe(pkg, "gpt", cfg, 1))
    cache = pkg.generation.KVCache(cfg["n_layer"])
    with torch.no_grad():
        pkg.generation.forward_with_cache(model, torch.zeros(1, 5, dtype=torch.long), cache)
        try:
            pkg.generation.forward_with_cache(model, torch.zeros(1, 2, dtype=torch.long), cache)
        except (ValueError, IndexError) as e:
            return {"error": str(e)}
    return {"value": 0}


# ---------------------------------------------------------------- generation

@pytest.mark.parametrize("positions", ["learned", "rope"])
@pytest.mark.parametrize("T0, n_new", [(1, 11), (4, 20), (12, 3), (17, 6)])
def test_greedy_generation_equals_reference(student, reference, rng, positions, T0, n_new):
    cfg = gpt_cfg(positions=positions, norm="rms" if positions == "rope" else "layer")
    state = reference.run(checkpoint_probe, "gpt", cfg, 22)
    prompt = torch.randint(0, cfg["vocab_size"], (3, T0), generator=rng)
    want = reference.run(generate_probe, cfg, state, prompt, n_new, 0, False, dict(greedy=True))
    for use_cache in (True, False):
        got = student.run(generate_probe, cfg, state, prompt, n_new, 0, use_cache, dict(greedy=True))
        assert_equal(got.tolist(), want.tolist(),
                     what=f"generate(prompt (3, {T0}), {n_new}, greedy=True, use_cache={use_cache}), "
                          f"block_size {cfg['block_size']} ({positions})",
                     hint="the context is the last block_size tokens, also for a prompt longer than block_size")


def test_generate_zero_new_tokens_returns_the_prompt(student, reference, rng):
    cfg = gpt_cfg()
    state = reference.run(checkpoint_probe, "gpt", cfg, 23)
    prompt = torch.randint(0, cfg["vocab_size"], (2, 4), generator=rng)
    got = student.run(generate_probe, cfg, state, prompt, 0, 0, True, dict(greedy=True))
    assert_equal(got.tolist(), prompt.tolist(), what="generate(prompt, 0)")


@pytest.mark.parametrize("options", [dict(top_k=3), dict(top_p=0.6, temperature=0.7),
                                     dict(top_k=5, top_p=0.8, temperature=1.4)], ids=["k", "p-temp", "all"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_sampled_generation_stays_in_the_filtered_support(student, reference, rng, options, use_cache):
    cfg = gpt_cfg(positions="rope", block_size=8)
    state = reference.run(checkpoint_probe, "gpt", cfg, 24)
    prompt = torch.randint(0, cfg["vocab_size"], (6, 3), generator=rng)
    seq = student.run(generate_probe, cfg, state, prompt, 12, 5, use_cache, options)
    assert_equal(list(seq.shape), [6, 15], what="generate(prompt (6, 3), 12) shape")
    assert_equal(seq[:, :3].tolist(), prompt.tolist(), what="generated sequences start with the prompt")
    allowed = reference.run(support_probe, cfg, state, seq, 3, options)
    picked = allowed.gather(-1, seq[:, 3:, None])[..., 0]
    check(bool(picked.all()), f"generate({options}, use_cache={use_cache}) produced "
          f"{int((~picked).sum())} tokens the filters remove",
          hint="each new token is drawn from the filtered logits of the last block_size tokens")
    again = student.run(generate_probe, cfg, state, prompt, 12, 5, use_cache, options)
    assert_equal(again.tolist(), seq.tolist(), what="generate twice with the same seed")


# ---------------------------------------------------------------- encoder-decoder

@pytest.mark.parametrize("eos, max_len, B", [(3, 6, 5), (0, 1, 2), (7, 9, 1), (10, 4, 8)])
def test_greedy_decode_equals_reference(student, reference, rng, eos, max_len, B):
    state = reference.run(checkpoint_probe, "s2s", S2S, 25)
    src = torch.randint(0, S2S["vocab_size"], (B, 6), generator=rng)
    got = student.run(greedy_decode_probe, S2S, state, src, 1, eos, max_len)
    want = reference.run(greedy_decode_probe, S2S, state, src, 1, eos, max_len)
    assert_equal(got.tolist(), want.tolist(),
                 what=f"greedy_decode(src ({B}, 6), bos=1, eos={eos}, max_len={max_len})")


# ---------------------------------------------------------------- evaluation

@pytest.mark.parametrize("N, block_size, strides", [(2, 12, [None]), (12, 12, [None, 5]), (13, 12, [None, 1, 7]),
                                                    (40, 12, [None, 12, 11, 5, 1]), (37, 8, [3, 8, 6])])
def test_perplexity_equals_reference(student, reference, rng, N, block_size, strides):
    cfg = gpt_cfg(positions="rope", block_size=block_size)
    state = reference.run(checkpoint_probe, "gpt", cfg, 26)
    tokens = torch.randint(0, cfg["vocab_size"], (N,), generator=rng)
    got = student.run(perplexity_probe, cfg, state, tokens, block_size, strides)
    want = reference.run(perplexity_probe, cfg, state, tokens, block_size, strides)
    for s, g, w in zip(strides, got, want):
        assert_close(float(g), w, atol=0, rtol=1e-5,
                     what=f"perplexity of {N} tokens, block_size {block_size}, stride {s}",
                     hint="windows end stride targets apart, each reads the block_size tokens before its end "
                          "and scores only targets no earlier window scored")


@pytest.mark.parametrize("nats, n_bytes", [(1234.5, 1000), (0.0, 7), (1e-3, 1)])
def test_bits_per_byte_values(student, nats, n_bytes):
    got = student.run(call_probe, "bits_per_byte", [nats, n_bytes])["value"]
    assert_close(float(got), nats / n_bytes / math.log(2), atol=1e-12, rtol=1e-9,
                 what=f"bits_per_byte({nats}, {n_bytes})")


def greedy_answers_probe(pkg, cfg, state, inputs, n_out):
    model = loaded(pkg, "gpt", cfg, state)
    prompts = torch.tensor([encode_digits(s) for s in inputs])
    out = pkg.generation.generate(model, prompts, n_out, greedy=True)
    return [decode_digits(row[len(inputs[0]):].tolist()) for row in out]


@pytest.mark.parametrize("n_digits", [1, 2])
def test_exact_match_counts_the_reference_greedy_answers(student, reference, n_digits):
    cfg = gpt_cfg(vocab_size=10, block_size=3 * n_digits + 2, positions="rope")
    state = reference.run(checkpoint_probe, "gpt", cfg, 27)
    pairs = reference.run(task_probe, 10, n_digits)
    answers = reference.run(greedy_answers_probe, cfg, state, [p[0] for p in pairs], n_digits + 1)
    # the model's own answer for pairs 0, 3, 6, 9; a changed last digit for the rest
    chosen = [[inp, ans if i % 3 == 0 else ans[:-1] + str((int(ans[-1]) + 1) % 10)]
              for i, ((inp, _), ans) in enumerate(zip(pairs, answers))]
    got = student.run(exact_match_probe, cfg, state, chosen)
    assert_close(float(got), 4 / 10, atol=1e-12, rtol=0, what=f"exact_match on 10 addition pairs ({n_digits} digits)")


def task_probe(pkg, count, n_digits):
    return [list(p) for p in pkg.data.addition_pairs(count, n_digits=n_digits, seed=3)]

"""Public tests for unit u04, attention.

Each test builds inputs here, runs a probe against your package with
`student.run`, and compares with a torch oracle computed here. Run them with
`llmfs check u04` or `pytest exercises/tests -m u04`.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from grader.testing import assert_close, assert_dropout_on_output, assert_equal

pytestmark = pytest.mark.u04


# ---------------------------------------------------------------- probes
# Probes run beside your code (in another process under `llmfs grade`):
# they take your package first and return plain data.

def softmax_probe(pkg, x, dim):
    return pkg.attention.softmax(x, dim=dim)


def causal_mask_probe(pkg, T):
    return pkg.attention.causal_mask(T)


def sdpa_probe(pkg, q, k, v, mask):
    return pkg.attention.scaled_dot_product_attention(q, k, v, mask=mask)


def sdpa_grads_probe(pkg, q, k, v, mask, grad_out):
    q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
    out = pkg.attention.scaled_dot_product_attention(q, k, v, mask=mask)
    out.backward(grad_out)
    return out.detach(), q.grad, k.grad, v.grad


def mha_probe(pkg, d_model, n_heads, state, x, context, mask):
    m = pkg.attention.MultiHeadAttention(d_model, n_heads).to(x.dtype)
    m.load_state_dict(state)
    m.eval()
    return m(x, context=context, mask=mask).detach()


def mha_grads_probe(pkg, d_model, n_heads, state, x, context, mask, grad_out):
    m = pkg.attention.MultiHeadAttention(d_model, n_heads).to(x.dtype)
    m.load_state_dict(state)
    x = x.clone().requires_grad_(True)
    out = m(x, context=context, mask=mask)
    out.backward(grad_out)
    return x.grad, {name: p.grad for name, p in m.named_parameters()}


def mha_dropout_probe(pkg, d_model, n_heads, state, x, p):
    """Outputs of MultiHeadAttention(dropout=p): in train mode (seeded), in eval mode, and with dropout=0."""
    m = pkg.attention.MultiHeadAttention(d_model, n_heads, dropout=p)
    m.load_state_dict(state)
    torch.manual_seed(0)
    train = m.train()(x).detach()
    evaluation = m.eval()(x).detach()
    plain = pkg.attention.MultiHeadAttention(d_model, n_heads)
    plain.load_state_dict(state)
    return train, evaluation, plain.eval()(x).detach()


def mha_state_probe(pkg, d_model, n_heads):
    m = pkg.attention.MultiHeadAttention(d_model, n_heads)
    return {name: list(t.shape) for name, t in m.state_dict().items()}


# ---------------------------------------------------------------- helpers

def shape(t):
    return tuple(t.shape)


def oracle_sdpa(q, k, v, mask):
    """torch's attention, with our documented choice for rows that may attend to nothing."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if mask is not None:
        nothing_allowed = ~mask.expand(*q.shape[:-1], k.shape[-2]).any(-1, keepdim=True)
        out = out.masked_fill(nothing_allowed, 0.0)
    return out


def random_padding_mask(B, Tk, rng):
    """(B, 1, 1, Tk): each sequence has a random number (>= 1) of real tokens."""
    lengths = torch.randint(1, Tk + 1, (B,), generator=rng)
    return (torch.arange(Tk)[None, :] < lengths[:, None])[:, None, None, :]


def mha_state(d_model, rng, dtype=torch.float32):
    return {f"{n}.weight": torch.randn(d_model, d_model, generator=rng, dtype=dtype) / math.sqrt(d_model)
            for n in ("q_proj", "k_proj", "v_proj", "out_proj")}


def torch_mha(d_model, n_heads, state):
    """nn.MultiheadAttention with our q/k/v/out weights copied in."""
    m = torch.nn.MultiheadAttention(d_model, n_heads, bias=False, batch_first=True,
                                    dtype=state["q_proj.weight"].dtype)
    with torch.no_grad():
        m.in_proj_weight.copy_(torch.cat([state["q_proj.weight"], state["k_proj.weight"],
                                          state["v_proj.weight"]]))
        m.out_proj.weight.copy_(state["out_proj.weight"])
    return m.eval()


# ---------------------------------------------------------------- softmax

@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_softmax_matches_torch_along_the_given_dim(student, rng, dim):
    x = torch.randn(3, 5, 7, generator=rng) * 3
    got = student.run(softmax_probe, x, dim)
    assert_close(got, F.softmax(x, dim=dim), atol=1e-6, rtol=1e-5,
                 what=f"softmax(x of shape {shape(x)}, dim={dim})",
                 hint="normalise along `dim` only: sum(..., dim=dim, keepdim=True)")


def test_softmax_does_not_overflow(student, rng):
    x = torch.randn(4, 10, generator=rng) + 1000.0
    got = student.run(softmax_probe, x, -1)
    assert_close(got, F.softmax(x, dim=-1), atol=1e-6, rtol=1e-5,
                 what=f"softmax(x + 1000) for x of shape {shape(x)}",
                 hint="subtract the row maximum before exp(); exp(1000) is inf in float32")


def test_softmax_of_all_minus_inf_is_zero(student):
    x = torch.tensor([[0.0, -math.inf, 1.0], [-math.inf, -math.inf, -math.inf]])
    got = student.run(softmax_probe, x, -1)
    want = torch.stack([F.softmax(x[0], dim=-1), torch.zeros(3)])
    assert_close(got, want, atol=1e-6, rtol=1e-5, what="softmax of a row that is entirely -inf",
                 hint="an all -inf row has max -inf; use 0 in its place and guard the division")


# ---------------------------------------------------------------- causal mask

@pytest.mark.parametrize("T", [1, 2, 7])
def test_causal_mask_allows_the_past_and_the_diagonal(student, T):
    got = student.run(causal_mask_probe, T)
    want = torch.ones(T, T).tril().bool()
    assert_close(got, want, what=f"causal_mask({T})",
                 hint="mask[i, j] is True exactly when j <= i (a query sees itself)")


# ---------------------------------------------------------------- attention

@pytest.mark.parametrize("dims", [(2, 3, 5, 4, 8, 6), (1, 1, 1, 7, 16, 16), (2, 4, 6, 6, 32, 8)],
                         ids=["Tq<Tk", "one-query", "square"])
def test_sdpa_matches_torch(student, rng, dims):
    B, H, Tq, Tk, d, dv = dims
    q = torch.randn(B, H, Tq, d, generator=rng)
    k = torch.randn(B, H, Tk, d, generator=rng)
    v = torch.randn(B, H, Tk, dv, generator=rng)
    got = student.run(sdpa_probe, q, k, v, None)
    assert_close(got, oracle_sdpa(q, k, v, None), atol=1e-5, rtol=1e-4,
                 what=f"attention(q {shape(q)}, k {shape(k)}, v {shape(v)})",
                 hint="scores = q @ k.transpose(-2, -1) / sqrt(d), softmax over the last dim (the keys)")


def test_sdpa_with_causal_mask(student, rng):
    q, k, v = (torch.randn(2, 3, 6, 8, generator=rng) for _ in range(3))
    mask = torch.ones(6, 6).tril().bool()
    got = student.run(sdpa_probe, q, k, v, mask)
    assert_close(got, oracle_sdpa(q, k, v, mask), atol=1e-5, rtol=1e-4,
                 what=f"causal attention on q, k, v of shape {shape(q)}",
                 hint="True in the mask means 'may attend'; fill the False scores with -inf")


def test_sdpa_with_padding_mask_and_extra_batch_dims(student, rng):
    q = torch.randn(2, 3, 2, 5, 8, generator=rng)
    k = torch.randn(2, 3, 2, 7, 8, generator=rng)
    v = torch.randn(2, 3, 2, 7, 4, generator=rng)
    mask = random_padding_mask(2, 7, rng)[:, None]  # (2, 1, 1, 1, 7)
    got = student.run(sdpa_probe, q, k, v, mask)
    assert_close(got, oracle_sdpa(q, k, v, mask), atol=1e-5, rtol=1e-4,
                 what=f"attention with a padding mask {shape(mask)} on q {shape(q)}, k {shape(k)}",
                 hint="the mask broadcasts against the scores (..., Tq, Tk)")


def test_sdpa_rows_with_nothing_allowed_are_zero(student, rng):
    q = torch.randn(1, 4, 8, generator=rng)
    k = torch.randn(1, 5, 8, generator=rng)
    v = torch.randn(1, 5, 3, generator=rng)
    mask = torch.rand(1, 4, 5, generator=rng) > 0.4
    mask[0, 0] = True
    mask[0, 2] = False  # query 2 may attend to nothing
    got = student.run(sdpa_probe, q, k, v, mask)
    assert_close(got, oracle_sdpa(q, k, v, mask), atol=1e-5, rtol=1e-4,
                 what="attention where query 2's mask row is all False",
                 hint="a fully masked row must give zeros, not NaN: your softmax decides this")


def test_sdpa_does_not_overflow_at_large_scale(student, rng):
    q = torch.randn(2, 5, 16, generator=rng, dtype=torch.float64) * 100
    k = torch.randn(2, 5, 16, generator=rng, dtype=torch.float64) * 100
    v = torch.randn(2, 5, 4, generator=rng, dtype=torch.float64)
    got = student.run(sdpa_probe, q, k, v, None)
    assert_close(got, oracle_sdpa(q, k, v, None), atol=1e-8, rtol=1e-7,
                 what="attention with scores of size ~1e4 (float64)",
                 hint="use your stable softmax; do not exponentiate raw scores")


def test_sdpa_gradients_match_torch(student, rng):
    q = torch.randn(2, 2, 5, 8, generator=rng, dtype=torch.float64)
    k = torch.randn(2, 2, 6, 8, generator=rng, dtype=torch.float64)
    v = torch.randn(2, 2, 6, 3, generator=rng, dtype=torch.float64)
    mask = random_padding_mask(2, 6, rng)
    grad_out = torch.randn(2, 2, 5, 3, generator=rng, dtype=torch.float64)
    out, gq, gk, gv = student.run(sdpa_grads_probe, q, k, v, mask, grad_out)
    q_, k_, v_ = (t.clone().requires_grad_(True) for t in (q, k, v))
    oracle_sdpa(q_, k_, v_, mask).backward(grad_out)
    for name, got, want in (("q", gq, q_.grad), ("k", gk, k_.grad), ("v", gv, v_.grad)):
        assert_close(got, want, atol=1e-8, rtol=1e-6, what=f"d(loss)/d{name} through attention",
                     hint="build everything from differentiable torch ops; no .detach() or .data")


# ---------------------------------------------------------------- multi-head

def test_mha_state_dict_names_and_shapes(student):
    got = student.run(mha_state_probe, 16, 4)
    want = {f"{n}.weight": [16, 16] for n in ("q_proj", "k_proj", "v_proj", "out_proj")}
    assert_equal(got, want, what="MultiHeadAttention(16, 4).state_dict() names and shapes",
                 hint="four nn.Linear(d_model, d_model, bias=False) named q_proj, k_proj, v_proj, out_proj")


@pytest.mark.parametrize("n_heads", [1, 4])
def test_mha_self_attention_matches_torch(student, rng, n_heads):
    d_model, B, T = 16, 2, 6
    state = mha_state(d_model, rng)
    x = torch.randn(B, T, d_model, generator=rng)
    mask = torch.ones(T, T).tril().bool()
    got = student.run(mha_probe, d_model, n_heads, state, x, None, mask)
    want, _ = torch_mha(d_model, n_heads, state)(x, x, x, attn_mask=~mask, need_weights=False)
    assert_close(got, want, atol=1e-5, rtol=1e-4,
                 what=f"causal self-attention, d_model={d_model}, n_heads={n_heads}, x {shape(x)}",
                 hint="split d_model into n_heads slices of head_dim (view, then transpose), attend per head, "
                      "merge the heads back, then apply out_proj; heads must not mix before out_proj")


def test_mha_cross_attention_matches_torch(student, rng):
    d_model, n_heads = 16, 4
    state = mha_state(d_model, rng)
    x = torch.randn(2, 3, d_model, generator=rng)
    context = torch.randn(2, 7, d_model, generator=rng)
    got = student.run(mha_probe, d_model, n_heads, state, x, context, None)
    want, _ = torch_mha(d_model, n_heads, state)(x, context, context, need_weights=False)
    assert_close(got, want, atol=1e-5, rtol=1e-4,
                 what=f"cross-attention, x {shape(x)} attending to context {shape(context)}",
                 hint="queries from x; keys and values from context")


def test_mha_gradients_match_torch(student, rng):
    d_model, n_heads, T = 8, 2, 5
    state = mha_state(d_model, rng, torch.float64)
    x = torch.randn(2, T, d_model, generator=rng, dtype=torch.float64)
    mask = torch.ones(T, T).tril().bool()
    grad_out = torch.randn(2, T, d_model, generator=rng, dtype=torch.float64)
    gx, gparams = student.run(mha_grads_probe, d_model, n_heads, state, x, None, mask, grad_out)

    oracle = torch_mha(d_model, n_heads, state).train()
    x_ = x.clone().requires_grad_(True)
    out, _ = oracle(x_, x_, x_, attn_mask=~mask, need_weights=False)
    out.backward(grad_out)
    assert_close(gx, x_.grad, atol=1e-8, rtol=1e-6, what="d(loss)/dx through multi-head attention")
    w_q, w_k, w_v = oracle.in_proj_weight.grad.chunk(3)
    want = {"q_proj.weight": w_q, "k_proj.weight": w_k, "v_proj.weight": w_v,
            "out_proj.weight": oracle.out_proj.weight.grad}
    assert_close(gparams, want, atol=1e-8, rtol=1e-6, what="weight gradients of multi-head attention")


@pytest.mark.parametrize("p", [0.5, 1.0])
def test_mha_dropout_is_applied_to_the_output_in_train_mode_only(student, rng, p):
    d_model, n_heads = 16, 4
    state = mha_state(d_model, rng)
    x = torch.randn(4, 50, d_model, generator=rng)  # 3200 outputs
    train, evaluation, plain = student.run(mha_dropout_probe, d_model, n_heads, state, x, p)
    assert_close(evaluation, plain, atol=1e-6, rtol=1e-5,
                 what=f"MultiHeadAttention(dropout={p}) in eval mode vs dropout=0",
                 hint="dropout must do nothing in eval mode: use nn.Dropout (it follows .train()/.eval())")
    hint = ("dropout goes on the output, after out_proj (the module docstring), as nn.Dropout; "
            "not on the attention weights, the values or the heads")
    if p == 1.0:
        assert_close(train, torch.zeros_like(train), atol=0, rtol=0,
                     what="MultiHeadAttention(dropout=1.0) in train mode: every output dropped", hint=hint)
    else:
        assert_dropout_on_output(train, evaluation, p, what=f"MultiHeadAttention(dropout={p}) in train mode",
                                 hint=hint)

"""Hidden tests for unit u04, attention: never shipped to students.

Stronger than the public tests: random shapes and mask patterns drawn per
case, float32 and float64, gradients through masks, cross-attention with
Tq != Tk, and state_dict interchange with the reference in both directions.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from grader.testing import assert_close, assert_equal

pytestmark = pytest.mark.u04

TOL = {torch.float32: dict(atol=2e-5, rtol=2e-4), torch.float64: dict(atol=1e-10, rtol=1e-8)}


# ---------------------------------------------------------------- probes

def softmax_probe(pkg, x, dim):
    return pkg.attention.softmax(x, dim=dim)


def causal_mask_probe(pkg, T):
    return pkg.attention.causal_mask(T)


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


def mha_fresh_state_probe(pkg, d_model, n_heads):
    m = pkg.attention.MultiHeadAttention(d_model, n_heads)
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def mha_train_step_probe(pkg, d_model, n_heads, state, x, context, mask, grad_out):
    m = pkg.attention.MultiHeadAttention(d_model, n_heads).to(x.dtype)
    m.load_state_dict(state)
    x = x.clone().requires_grad_(True)
    out = m(x, context=context, mask=mask)
    out.backward(grad_out)
    return out.detach(), x.grad, {n: p.grad for n, p in m.named_parameters()}


def mha_bad_heads_probe(pkg, d_model, n_heads):
    try:
        pkg.attention.MultiHeadAttention(d_model, n_heads)
    except ValueError:
        return "ValueError"
    return "no error"


# ---------------------------------------------------------------- helpers

def oracle_sdpa(q, k, v, mask):
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if mask is not None:
        none_allowed = ~mask.expand(*q.shape[:-1], k.shape[-2]).any(-1, keepdim=True)
        out = out.masked_fill(none_allowed, 0.0)
    return out


def random_mask(shape, rng, p_allow):
    """A random boolean mask in which every query row allows at least one key."""
    mask = torch.rand(shape, generator=rng) < p_allow
    first = torch.randint(0, shape[-1], shape[:-1], generator=rng)
    mask.scatter_(-1, first.unsqueeze(-1), True)
    return mask


def random_state(d_model, rng, dtype):
    return {f"{n}.weight": torch.randn(d_model, d_model, generator=rng, dtype=dtype) / math.sqrt(d_model)
            for n in ("q_proj", "k_proj", "v_proj", "out_proj")}


def torch_mha(d_model, n_heads, state):
    dtype = state["q_proj.weight"].dtype
    m = torch.nn.MultiheadAttention(d_model, n_heads, bias=False, batch_first=True, dtype=dtype)
    with torch.no_grad():
        m.in_proj_weight.copy_(torch.cat([state[f"{n}.weight"] for n in ("q_proj", "k_proj", "v_proj")]))
        m.out_proj.weight.copy_(state["out_proj.weight"])
    return m


def draw_shape(rng):
    def r(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=rng))
    return r(1, 3), r(1, 4), r(1, 9), r(1, 11), r(1, 24), r(1, 12)


# ---------------------------------------------------------------- softmax

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", range(4))
def test_softmax_random_shapes_dims_and_scales(student, rng, dtype, case):
    ndim = int(torch.randint(1, 5, (1,), generator=rng))
    shape = tuple(int(s) for s in torch.randint(1, 7, (ndim,), generator=rng))
    dim = int(torch.randint(-ndim, ndim, (1,), generator=rng))
    scale = [1.0, 30.0, 500.0, 1e4][case]
    x = (torch.randn(shape, generator=rng, dtype=dtype) * scale) - scale
    got = student.run(softmax_probe, x, dim)
    assert_close(got, F.softmax(x, dim=dim), **TOL[dtype], what=f"softmax over dim {dim} of shape {shape}")


def test_softmax_with_partial_minus_inf_rows(student, rng):
    x = torch.randn(5, 6, generator=rng)
    x[x > 0.5] = -math.inf
    x[:, 0] = torch.randn(5, generator=rng)  # at least one finite entry per row
    x[3] = -math.inf
    got = student.run(softmax_probe, x, -1)
    want = F.softmax(x, dim=-1)
    want[3] = 0.0
    assert_close(got, want, atol=1e-6, rtol=1e-5, what="softmax of rows with some -inf entries")


@pytest.mark.parametrize("T", [3, 16, 33])
def test_causal_mask_sizes(student, T):
    got = student.run(causal_mask_probe, T)
    assert_equal(got.dtype == torch.bool, True, what=f"causal_mask({T}).dtype is torch.bool")
    assert_close(got, torch.ones(T, T).tril().bool(), what=f"causal_mask({T})")


# ---------------------------------------------------------------- attention

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", range(5))
def test_sdpa_random_shapes_masks_and_gradients(student, rng, dtype, case):
    B, H, Tq, Tk, d, dv = draw_shape(rng)
    q = torch.randn(B, H, Tq, d, generator=rng, dtype=dtype)
    k = torch.randn(B, H, Tk, d, generator=rng, dtype=dtype)
    v = torch.randn(B, H, Tk, dv, generator=rng, dtype=dtype)
    mask_shape = [(B, H, Tq, Tk), (B, 1, 1, Tk), (Tq, Tk), (B, 1, Tq, Tk), None][case]
    mask = random_mask(mask_shape, rng, p_allow=0.5) if mask_shape else None
    grad_out = torch.randn(B, H, Tq, dv, generator=rng, dtype=dtype)
    out, gq, gk, gv = student.run(sdpa_grads_probe, q, k, v, mask, grad_out)

    q_, k_, v_ = (t.clone().requires_grad_(True) for t in (q, k, v))
    want = oracle_sdpa(q_, k_, v_, mask)
    want.backward(grad_out)
    what = f"attention with q {tuple(q.shape)}, k {tuple(k.shape)}, mask {mask_shape}, {dtype}"
    assert_close(out, want.detach(), **TOL[dtype], what=what)
    for name, got, ref in (("q", gq, q_.grad), ("k", gk, k_.grad), ("v", gv, v_.grad)):
        assert_close(got, ref, **TOL[dtype], what=f"gradient w.r.t. {name}, {what}")


def test_sdpa_fully_masked_rows_have_zero_output_and_finite_gradients(student, rng):
    q = torch.randn(2, 5, 4, generator=rng, dtype=torch.float64)
    k = torch.randn(2, 6, 4, generator=rng, dtype=torch.float64)
    v = torch.randn(2, 6, 3, generator=rng, dtype=torch.float64)
    mask = random_mask((2, 5, 6), rng, 0.5)
    mask[0, 1] = False
    mask[1, 4] = False
    grad_out = torch.randn(2, 5, 3, generator=rng, dtype=torch.float64)
    out, gq, gk, gv = student.run(sdpa_grads_probe, q, k, v, mask, grad_out)
    assert_close(out, oracle_sdpa(q, k, v, mask), atol=1e-10, rtol=1e-8, what="fully masked rows give zeros")
    for name, g in (("q", gq), ("k", gk), ("v", gv)):
        assert_equal(bool(torch.isfinite(g).all()), True, what=f"gradient w.r.t. {name} is finite (no NaN)")


# ---------------------------------------------------------------- multi-head

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n_heads, d_model, Tq, Tk", [(2, 8, 3, 9), (4, 32, 7, 2), (8, 16, 1, 5)])
def test_mha_cross_attention_with_padding_matches_torch(student, rng, dtype, n_heads, d_model, Tq, Tk):
    B = 3
    state = random_state(d_model, rng, dtype)
    x = torch.randn(B, Tq, d_model, generator=rng, dtype=dtype)
    context = torch.randn(B, Tk, d_model, generator=rng, dtype=dtype)
    keep = random_mask((B, Tk), rng, 0.6)
    got = student.run(mha_probe, d_model, n_heads, state, x, context, keep[:, None, None, :])
    want, _ = torch_mha(d_model, n_heads, state).eval()(x, context, context, key_padding_mask=~keep,
                                                          need_weights=False)
    assert_close(got, want, **TOL[dtype],
                 what=f"cross-attention, {n_heads} heads, x {tuple(x.shape)}, context {tuple(context.shape)}")


@pytest.mark.parametrize("n_heads, d_model, T", [(1, 4, 1), (3, 12, 5), (6, 24, 11)])
def test_mha_causal_self_attention_gradients(student, rng, n_heads, d_model, T):
    dtype = torch.float64
    state = random_state(d_model, rng, dtype)
    x = torch.randn(2, T, d_model, generator=rng, dtype=dtype)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    grad_out = torch.randn(2, T, d_model, generator=rng, dtype=dtype)
    out, gx, gp = student.run(mha_train_step_probe, d_model, n_heads, state, x, None, mask, grad_out)
    oracle = torch_mha(d_model, n_heads, state)
    x_ = x.clone().requires_grad_(True)
    want, _ = oracle(x_, x_, x_, attn_mask=~mask, need_weights=False)
    want.backward(grad_out)
    what = f"causal self-attention, {n_heads} heads, d_model {d_model}, T {T}"
    assert_close(out, want.detach(), **TOL[dtype], what=what)
    assert_close(gx, x_.grad, **TOL[dtype], what=f"input gradient, {what}")
    wq, wk, wv = oracle.in_proj_weight.grad.chunk(3)
    assert_close(gp, {"q_proj.weight": wq, "k_proj.weight": wk, "v_proj.weight": wv,
                      "out_proj.weight": oracle.out_proj.weight.grad}, **TOL[dtype], what=f"weight gradients, {what}")


def test_reference_state_dict_loads_into_student(student, reference, rng):
    d_model, n_heads = 16, 4
    state = reference.run(mha_fresh_state_probe, d_model, n_heads)
    x = torch.randn(2, 5, d_model, generator=rng)
    mask = torch.ones(5, 5, dtype=torch.bool).tril()
    got = student.run(mha_probe, d_model, n_heads, state, x, None, mask)
    want = reference.run(mha_probe, d_model, n_heads, state, x, None, mask)
    assert_close(got, want, atol=2e-5, rtol=2e-4, what="output with the reference's weights loaded")


def test_student_state_dict_loads_into_reference(student, reference, rng):
    d_model, n_heads = 16, 2
    state = student.run(mha_fresh_state_probe, d_model, n_heads)
    want_keys = sorted(reference.run(mha_fresh_state_probe, d_model, n_heads))
    assert_equal(sorted(state), want_keys, what="state_dict keys")
    x = torch.randn(1, 4, d_model, generator=rng)
    context = torch.randn(1, 6, d_model, generator=rng)
    got = student.run(mha_probe, d_model, n_heads, state, x, context, None)
    want = reference.run(mha_probe, d_model, n_heads, state, x, context, None)
    assert_close(got, want, atol=2e-5, rtol=2e-4, what="your weights, run by the reference and by you")


def test_mha_initial_weights_are_not_degenerate(student):
    state = student.run(mha_fresh_state_probe, 32, 4)
    for name, w in state.items():
        assert_equal(bool(w.std() > 0), True, what=f"{name} is initialised (not all equal)")


def test_mha_rejects_heads_that_do_not_divide_d_model(student):
    assert_equal(student.run(mha_bad_heads_probe, 10, 4), "ValueError",
                 what="MultiHeadAttention(10, 4) raises", hint="raise ValueError when d_model % n_heads != 0")

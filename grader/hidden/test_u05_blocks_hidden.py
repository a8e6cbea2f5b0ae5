"""Hidden tests for unit u05, blocks: random shapes and configurations, float32
and float64, gradients, dropout wiring, numerically hard inputs.

Never shipped to students. Where torch has no oracle (blocks in every
norm/ffn combination) the reference solution is the oracle, run on the same
weights. Failure summaries never show expected values.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from grader.testing import assert_close, assert_equal

pytestmark = pytest.mark.u05


# ---------------------------------------------------------------- probes

def run_probe(pkg, cls_name, args, kwargs, state, inputs, grad_out, train_seed):
    """Build layers.<cls_name>, load `state`, run on `inputs`, backpropagate.
    train_seed None: eval mode; otherwise train mode with that torch seed."""
    dtype = inputs[0].dtype
    m = getattr(pkg.layers, cls_name)(*args, **kwargs).to(dtype)
    m.load_state_dict(state)
    if train_seed is None:
        m.eval()
    else:
        m.train()
        torch.manual_seed(train_seed)
    inputs = [t.clone().requires_grad_(True) if t is not None and t.is_floating_point() else t for t in inputs]
    out = m(*inputs)
    out.backward(grad_out)
    return (out.detach(), [t.grad if t is not None and t.is_floating_point() else None for t in inputs],
            {name: p.grad for name, p in m.named_parameters()})


def fresh_state_probe(pkg, cls_name, args, kwargs):
    return dict(getattr(pkg.layers, cls_name)(*args, **kwargs).state_dict())


def gelu_probe(pkg, x):
    return pkg.layers.gelu(x)


def factory_error_probe(pkg, which, name):
    try:
        if which == "norm":
            pkg.layers.make_norm(name, 8)
        else:
            pkg.layers.make_ffn(name, 8, 16)
    except NotImplementedError:
        raise  # a stub is not an answer
    except Exception as e:  # noqa: BLE001 - the type is the answer
        return type(e).__name__
    return "nothing"


def rope_positions_probe(pkg, state, x, positions):
    d_model, n_heads = x.shape[-1], 2
    rope = pkg.embeddings.RotaryEmbedding(d_model // n_heads, 64)
    block = pkg.layers.DecoderBlock(d_model, n_heads, 3 * d_model, rope=rope).to(x.dtype)
    block.load_state_dict(state)
    block.eval()
    return block(x, positions).detach()


# ---------------------------------------------------------------- helpers

def random_like_state(shapes, rng, dtype):
    """Random weights with the given {name: shape}: norms near 1, the rest scaled by fan-in."""
    state = {}
    for name, s in shapes.items():
        t = torch.randn(*s, generator=rng, dtype=dtype)
        if name.startswith("norm") and name.endswith("weight"):
            t = 1 + 0.3 * t
        elif len(s) == 2:
            t = t / math.sqrt(s[1])
        else:
            t = 0.3 * t
        state[name] = t
    return state


def shapes_of(reference, cls_name, args, kwargs):
    return {k: list(v.shape) for k, v in reference.run(fresh_state_probe, cls_name, args, kwargs).items()}


def tolerances(dtype):
    return (1e-9, 1e-7) if dtype == torch.float64 else (2e-5, 2e-4)


def assert_runs_match(got, want, atol, rtol, what):
    """Compare two run_probe results: output, input gradients (None for masks), parameter gradients."""
    assert_close(got[0], want[0], atol=atol, rtol=rtol, what=f"{what}: output")
    for i, (g, w) in enumerate(zip(got[1], want[1])):
        if w is not None:
            assert_close(g, w, atol=atol, rtol=rtol, what=f"{what}: gradient of input {i}")
    assert_close(got[2], want[2], atol=atol, rtol=rtol, what=f"{what}: parameter gradients")


# ---------------------------------------------------------------- norms and GELU

@pytest.mark.parametrize("shape, dtype", [((33,), torch.float32), ((3, 7, 48), torch.float32),
                                          ((2, 2, 3, 5), torch.float64), ((4, 1), torch.float64)],
                         ids=["1-d", "3-d-f32", "4-d-f64", "dim-1"])
def test_norms_random_shapes_forward_and_backward(student, rng, shape, dtype):
    dim = shape[-1]
    x = torch.randn(*shape, generator=rng, dtype=dtype) * 2 - 0.5
    grad_out = torch.randn(*shape, generator=rng, dtype=dtype)
    atol, rtol = tolerances(dtype)
    for cls_name in ("LayerNorm", "RMSNorm"):
        state = {"weight": 1 + 0.3 * torch.randn(dim, generator=rng, dtype=dtype)}
        if cls_name == "LayerNorm":
            state["bias"] = torch.randn(dim, generator=rng, dtype=dtype)
        out, (gx,), gp = student.run(run_probe, cls_name, [dim], {}, state, [x], grad_out, None)
        x_ = x.clone().requires_grad_(True)
        p = {k: v.clone().requires_grad_(True) for k, v in state.items()}
        if cls_name == "LayerNorm":
            want = F.layer_norm(x_, (dim,), p["weight"], p["bias"], eps=1e-5)
        else:
            want = F.rms_norm(x_, (dim,), p["weight"], eps=1e-5)
        want.backward(grad_out)
        what = f"{cls_name}({dim}) on x {shape} ({dtype})"
        assert_close(out, want.detach(), atol=atol, rtol=rtol, what=f"{what}: output")
        assert_close(gx, x_.grad, atol=atol * 10, rtol=rtol * 10, what=f"{what}: input gradient")
        assert_close(gp, {k: v.grad for k, v in p.items()}, atol=atol * 10, rtol=rtol * 10,
                     what=f"{what}: parameter gradients")


def test_layernorm_float32_far_from_zero_is_stable(student, rng):
    """var = E[x^2] - E[x]^2 cancels catastrophically in float32 when |mean| >> std."""
    x = torch.randn(4, 16, 256, generator=rng) + 100.0
    state = {"weight": torch.ones(256), "bias": torch.zeros(256)}
    out = student.run(run_probe, "LayerNorm", [256], {}, state, [x], torch.zeros_like(x), None)[0]
    want = F.layer_norm(x.double(), (256,), eps=1e-5).float()
    assert_close(out, want, atol=1e-3, rtol=0, what="LayerNorm(256) in float32 on x with mean 100, std 1")


def test_gelu_float32_wide_range(student):
    x = torch.cat([torch.linspace(-12, 12, 97), torch.tensor([-1e13, -1e4, -50.0, 50.0, 1e4, 1e13])])
    got = student.run(gelu_probe, x)
    assert_close(got, F.gelu(x.double(), approximate="tanh").float(), atol=1e-5, rtol=1e-5,
                 what="gelu on float32 x from -1e13 to 1e13")


@pytest.mark.parametrize("which, name", [("norm", "batch"), ("ffn", "relu")])
def test_unknown_part_names_raise_value_error(student, which, name):
    got = student.run(factory_error_probe, which, name)
    assert_equal(got, "ValueError", what=f"make_{which}({name!r}, ...)")


# ---------------------------------------------------------------- feed-forward

@pytest.mark.parametrize("cls_name", ["FeedForward", "SwiGLU"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_feed_forward_random_sizes_vs_reference(student, reference, rng, cls_name, dtype):
    dim, hidden = 24, 61
    state = random_like_state(shapes_of(reference, cls_name, [dim, hidden], {}), rng, dtype)
    x = torch.randn(3, 1, 5, dim, generator=rng, dtype=dtype)
    grad_out = torch.randn(3, 1, 5, dim, generator=rng, dtype=dtype)
    got = student.run(run_probe, cls_name, [dim, hidden], {}, state, [x], grad_out, None)
    want = reference.run(run_probe, cls_name, [dim, hidden], {}, state, [x], grad_out, None)
    atol, rtol = tolerances(dtype)
    assert_runs_match(got, want, atol, rtol, f"{cls_name}({dim}, {hidden}) on x (3, 1, 5, {dim}), {dtype}")


# ---------------------------------------------------------------- blocks

BLOCK_CASES = [
    ("DecoderBlock", "layer", "gelu", (3, 9), None, torch.float64),
    ("DecoderBlock", "rms", "gelu", (1, 1), None, torch.float32),
    ("DecoderBlock", "layer", "swiglu", (2, 5), None, torch.float32),
    ("EncoderBlock", "rms", "swiglu", (3, 6), "padding", torch.float64),
    ("EncoderBlock", "layer", "gelu", (2, 4), None, torch.float32),
    ("CrossDecoderBlock", "layer", "gelu", (2, 4), 9, torch.float64),
    ("CrossDecoderBlock", "rms", "swiglu", (3, 7), 2, torch.float32),
]


def block_inputs(cls_name, B, T, extra, dtype, d, rng):
    x = torch.randn(B, T, d, generator=rng, dtype=dtype)
    if cls_name == "EncoderBlock":
        mask = None
        if extra == "padding":
            lengths = torch.randint(1, T + 1, (B,), generator=rng)
            mask = (torch.arange(T)[None, :] < lengths[:, None])[:, None, None, :]
        return [x, mask]
    if cls_name == "CrossDecoderBlock":
        memory = torch.randn(B, extra, d, generator=rng, dtype=dtype)
        lengths = torch.randint(1, extra + 1, (B,), generator=rng)
        return [x, memory, (torch.arange(extra)[None, :] < lengths[:, None])[:, None, None, :]]
    return [x]


@pytest.mark.parametrize("case", BLOCK_CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}-{c[5]}".replace("torch.", "")
                                                   for c in BLOCK_CASES])
def test_block_random_configurations_vs_reference(student, reference, rng, case):
    cls_name, norm, ffn, (B, T), extra, dtype = case
    d, n_heads, d_ff = 24, 3, 40
    kwargs = {"norm": norm, "ffn": ffn}
    state = random_like_state(shapes_of(reference, cls_name, [d, n_heads, d_ff], kwargs), rng, dtype)
    inputs = block_inputs(cls_name, B, T, extra, dtype, d, rng)
    grad_out = torch.randn(B, T, d, generator=rng, dtype=dtype)
    got = student.run(run_probe, cls_name, [d, n_heads, d_ff], kwargs, state, inputs, grad_out, None)
    want = reference.run(run_probe, cls_name, [d, n_heads, d_ff], kwargs, state, inputs, grad_out, None)
    atol, rtol = tolerances(dtype)
    assert_runs_match(got, want, atol * 10, rtol * 10,
                      f"{cls_name}(d={d}, heads={n_heads}, d_ff={d_ff}, norm={norm!r}, ffn={ffn!r}) "
                      f"on x ({B}, {T}, {d}), {dtype}")


@pytest.mark.parametrize("cls_name", ["DecoderBlock", "EncoderBlock", "CrossDecoderBlock"])
def test_block_dropout_is_off_in_eval_and_on_in_train(student, reference, rng, cls_name):
    d, n_heads, d_ff = 16, 2, 32
    kwargs = {"dropout": 0.5}
    state = random_like_state(shapes_of(reference, cls_name, [d, n_heads, d_ff], {}), rng, torch.float64)
    inputs = block_inputs(cls_name, 2, 6, 5, torch.float64, d, rng)
    grad_out = torch.ones(2, 6, d, dtype=torch.float64)
    got_eval = student.run(run_probe, cls_name, [d, n_heads, d_ff], kwargs, state, inputs, grad_out, None)[0]
    want_eval = reference.run(run_probe, cls_name, [d, n_heads, d_ff], {}, state, inputs, grad_out, None)[0]
    assert_close(got_eval, want_eval, atol=1e-9, rtol=1e-7,
                 what=f"{cls_name}(dropout=0.5) in eval mode: dropout must do nothing")
    # In train mode, silence all sublayers but one kind: its dropout alone must change the output.
    for kept, silenced in (("feed-forward", "out_proj.weight"), ("attention", "ffn.down.")):
        quiet = {k: (torch.zeros_like(v) if silenced in k else v) for k, v in state.items()}
        still = reference.run(run_probe, cls_name, [d, n_heads, d_ff], {}, quiet, inputs, grad_out, None)[0]
        train = student.run(run_probe, cls_name, [d, n_heads, d_ff], kwargs, quiet, inputs, grad_out, 0)[0]
        changed = bool((train - still).abs().max() > 1e-6)
        assert_equal(changed, True, what=f"{cls_name}(dropout=0.5) in train mode, only the {kept} active: "
                                         f"dropout changes the output",
                     hint=f"pass dropout on to the {kept}")


def test_decoder_block_rope_positions_default_and_one_dim(student, rng):
    d = 16
    shapes = {"norm1.weight": [d], "norm1.bias": [d], "norm2.weight": [d], "norm2.bias": [d],
              **{f"attn.{p}.weight": [d, d] for p in ("q_proj", "k_proj", "v_proj", "out_proj")},
              "ffn.up.weight": [3 * d, d], "ffn.up.bias": [3 * d], "ffn.down.weight": [d, 3 * d], "ffn.down.bias": [d]}
    state = random_like_state(shapes, rng, torch.float64)
    x = torch.randn(2, 7, d, generator=rng, dtype=torch.float64)
    default = student.run(rope_positions_probe, state, x, None)
    explicit = student.run(rope_positions_probe, state, x, torch.arange(7))
    batched = student.run(rope_positions_probe, state, x, torch.arange(7).expand(2, 7).contiguous())
    assert_close(default, explicit, atol=1e-12, rtol=0,
                 what="DecoderBlock with RoPE: positions=None vs positions=arange(7)")
    assert_close(batched, explicit, atol=1e-12, rtol=0,
                 what="DecoderBlock with RoPE: positions (B, T) vs (T,) holding the same values")
    shifted = student.run(rope_positions_probe, state, x, torch.tensor([0, 1, 2, 3, 5, 6, 7]))
    moved = bool((shifted - explicit).abs().max() > 1e-6)
    assert_equal(moved, True, what="DecoderBlock with RoPE: a gap in the positions changes the output")

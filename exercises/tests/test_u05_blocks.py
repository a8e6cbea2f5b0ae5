"""Public tests for unit u05, blocks.

Each test builds inputs and weights here, runs a probe against your package
with `student.run`, and compares with torch computed here: nn.LayerNorm,
nn.RMSNorm, F.gelu(approximate="tanh"), and nn.TransformerEncoderLayer /
nn.TransformerDecoderLayer (norm_first=True) with your block's weights copied
in, forward and backward. Run them with `llmfs check u05` or
`pytest exercises/tests -m u05`.

Your blocks are built on your u04 MultiHeadAttention, and the RoPE test on
your u03 RotaryEmbedding: finish those units first.
"""

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from grader.snapshots import load_snapshot
from grader.testing import assert_close, assert_dropout_on_output, assert_equal

pytestmark = pytest.mark.u05

D, H, FF = 16, 4, 32  # d_model, heads, feed-forward width of the blocks under test


# ---------------------------------------------------------------- probes

def init_state_probe(pkg, cls_name, args, kwargs):
    return dict(getattr(pkg.layers, cls_name)(*args, **kwargs).state_dict())


def module_probe(pkg, cls_name, args, kwargs, state, inputs, grad_out):
    """Build layers.<cls_name>(*args, **kwargs) with `state`, run it on `inputs`
    (float ones get gradients; masks and None pass through), backpropagate grad_out."""
    dtype = inputs[0].dtype
    m = getattr(pkg.layers, cls_name)(*args, **kwargs).to(dtype)
    m.load_state_dict(state)
    m.eval()
    inputs = [t.clone().requires_grad_(True) if t is not None and t.is_floating_point() else t for t in inputs]
    out = m(*inputs)
    out.backward(grad_out)
    return (out.detach(), [t.grad if t is not None and t.is_floating_point() else None for t in inputs],
            {name: p.grad for name, p in m.named_parameters()})


def gelu_probe(pkg, x, grad_out):
    x = x.clone().requires_grad_(True)
    out = pkg.layers.gelu(x)
    out.backward(grad_out)
    return out.detach(), x.grad


def rope_block_probe(pkg, n_heads, max_T, state, x, positions):
    d_model = x.shape[-1]
    rope = pkg.embeddings.RotaryEmbedding(d_model // n_heads, max_T)
    block = pkg.layers.DecoderBlock(d_model, n_heads, 2 * d_model, norm="rms", ffn="swiglu", rope=rope)
    block = block.to(x.dtype)
    block.load_state_dict(state)
    block.eval()
    return block(x, positions).detach()


def build_with_dropout(pkg, cls_name, args, kwargs, state, dtype, dropout, rope_max_T):
    extra = {"rope": pkg.embeddings.RotaryEmbedding(args[0] // args[1], rope_max_T)} if rope_max_T else {}
    m = getattr(pkg.layers, cls_name)(*args, dropout=dropout, **kwargs, **extra).to(dtype)
    m.load_state_dict(state)
    return m


def dropout_probe(pkg, cls_name, args, kwargs, state, inputs, p, rope_max_T):
    """Outputs of layers.<cls_name>(dropout=p): in train mode (seeded), in eval mode, and
    of the same module built with dropout=0 (eval). rope_max_T: give a DecoderBlock RoPE."""
    m = build_with_dropout(pkg, cls_name, args, kwargs, state, inputs[0].dtype, p, rope_max_T)
    plain = build_with_dropout(pkg, cls_name, args, kwargs, state, inputs[0].dtype, 0.0, rope_max_T)
    torch.manual_seed(0)
    with torch.no_grad():
        return m.train()(*inputs), m.eval()(*inputs), plain.eval()(*inputs)


# ---------------------------------------------------------------- weights

ATTENTIONS = {"DecoderBlock": ("attn",), "EncoderBlock": ("attn",),
              "CrossDecoderBlock": ("self_attn", "cross_attn")}
NORMS = {"DecoderBlock": ("norm1", "norm2"), "EncoderBlock": ("norm1", "norm2"),
         "CrossDecoderBlock": ("norm1", "norm2", "norm3")}


def shape(t):
    return tuple(t.shape)


def norm_state(prefix, d, norm, rng, dtype=torch.float64):
    s = {f"{prefix}weight": 1 + 0.3 * torch.randn(d, generator=rng, dtype=dtype)}
    if norm == "layer":
        s[f"{prefix}bias"] = 0.3 * torch.randn(d, generator=rng, dtype=dtype)
    return s


def ffn_state(prefix, d, hidden, ffn, rng, dtype=torch.float64):
    def w(o, i):
        return torch.randn(o, i, generator=rng, dtype=dtype) / math.sqrt(i)
    if ffn == "swiglu":
        return {f"{prefix}gate.weight": w(hidden, d), f"{prefix}up.weight": w(hidden, d),
                f"{prefix}down.weight": w(d, hidden)}
    return {f"{prefix}up.weight": w(hidden, d), f"{prefix}up.bias": 0.3 * torch.randn(hidden, generator=rng, dtype=dtype),
            f"{prefix}down.weight": w(d, hidden), f"{prefix}down.bias": 0.3 * torch.randn(d, generator=rng, dtype=dtype)}


def block_state(cls_name, rng, norm="layer", ffn="gelu", d=D, ff=FF, dtype=torch.float64):
    """Random weights for a block, under this course's state_dict names."""
    s = {}
    for n in NORMS[cls_name]:
        s.update(norm_state(f"{n}.", d, norm, rng, dtype))
    for a in ATTENTIONS[cls_name]:
        for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s[f"{a}.{p}.weight"] = torch.randn(d, d, generator=rng, dtype=dtype) / math.sqrt(d)
    s.update(ffn_state("ffn.", d, ff, ffn, rng, dtype))
    return s


# ---------------------------------------------------------------- oracles

TORCH_ATTN = {"attn": "self_attn", "self_attn": "self_attn", "cross_attn": "multihead_attn"}
TORCH_FFN = {"ffn.up.": "linear1.", "ffn.down.": "linear2."}


def torch_layer(cls_name, state, n_heads=H):
    """nn.TransformerEncoderLayer (Decoder/EncoderBlock) or nn.TransformerDecoderLayer
    (CrossDecoderBlock), pre-norm, tanh GELU, with our weights copied in and the
    attention biases (which our attention does not have) set to zero."""
    d, ff = state["norm1.weight"].shape[0], state["ffn.up.weight"].shape[0]
    cls = nn.TransformerDecoderLayer if cls_name == "CrossDecoderBlock" else nn.TransformerEncoderLayer
    layer = cls(d, n_heads, ff, dropout=0.0, activation=functools.partial(F.gelu, approximate="tanh"),
                layer_norm_eps=1e-5, batch_first=True, norm_first=True, dtype=state["norm1.weight"].dtype)
    theirs = {}
    for ours, t in state.items():
        for a, ta in TORCH_ATTN.items():
            if ours.startswith(a + ".") and ours.endswith("out_proj.weight"):
                theirs[f"{ta}.out_proj.weight"] = t
                theirs[f"{ta}.out_proj.bias"] = torch.zeros(d, dtype=t.dtype)
            elif ours.startswith(a + ".") and ours.endswith("q_proj.weight"):
                theirs[f"{ta}.in_proj_weight"] = torch.cat([state[f"{a}.{p}.weight"] for p in ("q_proj", "k_proj", "v_proj")])
                theirs[f"{ta}.in_proj_bias"] = torch.zeros(3 * d, dtype=t.dtype)
        for f, tf in TORCH_FFN.items():
            if ours.startswith(f):
                theirs[tf + ours[len(f):]] = t
        if ours.startswith("norm"):
            theirs[ours] = t
    layer.load_state_dict(theirs)
    return layer.train()


def torch_layer_grads(layer, state):  # llmfs: not an oracle (renames the oracle's gradients)
    """The layer's parameter gradients, under our names."""
    g = {name: p.grad for name, p in layer.named_parameters()}
    out = {}
    for ours in state:
        prefix, _, rest = ours.partition(".")
        if ours.startswith("ffn."):
            f = ours[:ours.index(".", 4) + 1]
            out[ours] = g[TORCH_FFN[f] + ours[len(f):]]
        elif prefix in TORCH_ATTN:
            ta, proj = TORCH_ATTN[prefix], rest.split(".")[0]
            if proj == "out_proj":
                out[ours] = g[f"{ta}.out_proj.weight"]
            else:
                out[ours] = g[f"{ta}.in_proj_weight"].chunk(3)[("q_proj", "k_proj", "v_proj").index(proj)]
        else:
            out[ours] = g[ours]
    return out


def check_module_against(got, out, inputs, params, state, what, hint=None, atol=1e-9, rtol=1e-7):
    """Compare module_probe's (out, input grads, param grads) with torch's."""
    got_out, got_in, got_params = got
    assert_close(got_out, out, atol=atol, rtol=rtol, what=f"{what}: output", hint=hint)
    for i, t in enumerate(inputs):
        if t is not None and t.grad is not None:
            assert_close(got_in[i], t.grad, atol=atol, rtol=rtol, what=f"{what}: gradient of input {i}", hint=hint)
    assert_close(got_params, params, atol=atol, rtol=rtol, what=f"{what}: parameter gradients", hint=hint)


def leaf(t):
    return t.clone().requires_grad_(True)


# ---------------------------------------------------------------- snapshots
# torch has no pre-norm block with RMSNorm, SwiGLU or RoPE to compare with, so
# those tests compare with stored values: the probe below was run once on the
# reference (`python -m grader.snapshots --unit u05`) and its inputs and
# outputs kept in data/test_u05_blocks.npz.

SD, SH, SFF = 8, 2, 16  # small blocks, to keep the stored file small


def snapshot_modern_blocks(pkg):
    g = torch.Generator().manual_seed(5)
    state = block_state("DecoderBlock", g, "rms", "swiglu", d=SD, ff=SFF)
    x = torch.randn(2, 6, SD, generator=g, dtype=torch.float64)
    grad_out = torch.randn(2, 6, SD, generator=g, dtype=torch.float64)
    out, (gx,), grads = module_probe(pkg, "DecoderBlock", [SD, SH, SFF], {"norm": "rms", "ffn": "swiglu"},
                                     state, [x], grad_out)
    rope_state = block_state("DecoderBlock", g, "rms", "swiglu", d=SD, ff=2 * SD)
    rope_x = torch.randn(2, 6, SD, generator=g, dtype=torch.float64)
    positions = torch.tensor([[0, 1, 2, 3, 4, 5], [3, 4, 9, 10, 11, 15]])  # gaps: not just a shift
    return {"modern": {"x": x, "grad_out": grad_out, "out": out, "x_grad": gx,
                       **{f"state.{k}": v for k, v in state.items()}, **{f"grad.{k}": v for k, v in grads.items()}},
            "rope": {"x": rope_x, "positions": positions, "out": rope_block_probe(pkg, SH, 16, rope_state, rope_x, positions),
                     **{f"state.{k}": v for k, v in rope_state.items()}}}


SNAP = load_snapshot(__file__)


def stored_state(case, prefix="state."):
    return {k[len(prefix):]: v for k, v in SNAP[case].items() if k.startswith(prefix)}


# ---------------------------------------------------------------- norms

@pytest.mark.parametrize("cls_name, want", [
    ("LayerNorm", {"weight": torch.ones(8), "bias": torch.zeros(8)}),
    ("RMSNorm", {"weight": torch.ones(8)}),
])
def test_norm_parameters_and_their_initial_values(student, cls_name, want):
    got = student.run(init_state_probe, cls_name, [8], {})
    assert_close(got, want, atol=0, rtol=0, what=f"{cls_name}(8).state_dict() at initialisation",
                 hint="weight starts at ones (and LayerNorm's bias at zeros), so a fresh norm only normalises")


@pytest.mark.parametrize("scale, offset, eps", [(3.0, 2.0, 1e-5), (1e-3, 0.0, 1e-5), (1.0, -1.0, 0.5)],
                         ids=["ordinary", "tiny-variance", "eps-0.5"])
def test_layernorm_matches_torch(student, rng, scale, offset, eps):
    x = torch.randn(2, 5, 8, generator=rng, dtype=torch.float64) * scale + offset
    state = norm_state("", 8, "layer", rng)
    grad_out = torch.randn(2, 5, 8, generator=rng, dtype=torch.float64)
    got = student.run(module_probe, "LayerNorm", [8], {"eps": eps}, state, [x], grad_out)
    oracle = nn.LayerNorm(8, eps=eps, dtype=torch.float64)
    oracle.load_state_dict(state)
    x_ = leaf(x)
    oracle(x_).backward(grad_out)
    check_module_against(got, oracle(x), [x_], {n: p.grad for n, p in oracle.named_parameters()}, state,
                         f"LayerNorm(8, eps={eps}) on x {shape(x)} with std {scale:g}",
                         hint="(x - mean) / sqrt(var + eps) * weight + bias, over the last dim only: var is the "
                              "*biased* mean of (x - mean)^2 (divide by dim), eps inside the square root, the bias "
                              "added; no .detach(): the gradient flows through mean and var too")


def test_layernorm_float32_far_from_zero(student, rng):
    x = torch.randn(4, 16, 64, generator=rng) + 1000.0  # float32, mean 1000, std 1
    state = {"weight": torch.ones(64), "bias": torch.zeros(64)}
    out = student.run(module_probe, "LayerNorm", [64], {}, state, [x], torch.zeros_like(x))[0]
    want = nn.LayerNorm(64, dtype=torch.float64)(x.double()).detach().float()
    assert_close(out, want, atol=2e-3, rtol=0, what=f"LayerNorm(64) in float32 on x {shape(x)} with mean 1000, std 1",
                 hint="compute the variance as the mean of (x - mean)**2, not as mean(x**2) - mean**2: in "
                      "float32, 1000**2 keeps only ~3 decimal places and the difference loses them all")


@pytest.mark.parametrize("offset, scale", [(2.0, 1.0), (0.0, 1e-3)], ids=["mean-2", "tiny"])
def test_rmsnorm_matches_torch(student, rng, offset, scale):
    x = torch.randn(3, 4, 8, generator=rng, dtype=torch.float64) * scale + offset
    state = norm_state("", 8, "rms", rng)
    grad_out = torch.randn(3, 4, 8, generator=rng, dtype=torch.float64)
    got = student.run(module_probe, "RMSNorm", [8], {}, state, [x], grad_out)
    oracle = nn.RMSNorm(8, eps=1e-5, dtype=torch.float64)
    oracle.load_state_dict(state)
    x_ = leaf(x)
    oracle(x_).backward(grad_out)
    check_module_against(got, oracle(x), [x_], {n: p.grad for n, p in oracle.named_parameters()}, state,
                         f"RMSNorm(8) on x {shape(x)} with mean {offset:g}, std {scale:g}",
                         hint="x / sqrt(mean(x**2) + eps) * weight: the mean of the squares (not their sum), eps "
                              "inside the square root, and no mean subtracted")


# ---------------------------------------------------------------- GELU and feed-forward

def test_gelu_is_the_tanh_approximation(student, rng):
    x = torch.linspace(-8, 8, 401, dtype=torch.float64)
    grad_out = torch.randn(401, generator=rng, dtype=torch.float64)
    out, gx = student.run(gelu_probe, x, grad_out)
    x_ = leaf(x)
    F.gelu(x_, approximate="tanh").backward(grad_out)
    hint = "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); the exact erf GELU differs by up to ~5e-4"
    assert_close(out, F.gelu(x, approximate="tanh"), atol=1e-12, rtol=1e-10, what="gelu(x) for x in [-8, 8]",
                 hint=hint)
    assert_close(gx, x_.grad, atol=1e-12, rtol=1e-10, what="d gelu(x)/dx for x in [-8, 8]", hint=hint)


@pytest.mark.parametrize("cls_name, want", [
    ("FeedForward", {"up.weight": [32, 16], "up.bias": [32], "down.weight": [16, 32], "down.bias": [16]}),
    ("SwiGLU", {"gate.weight": [32, 16], "up.weight": [32, 16], "down.weight": [16, 32]}),
])
def test_feed_forward_parameter_names_and_shapes(student, cls_name, want):
    got = student.run(init_state_probe, cls_name, [16, 32], {})
    assert_equal({k: list(v.shape) for k, v in got.items()}, want, what=f"{cls_name}(16, 32).state_dict() names and shapes",
                 hint="FeedForward: up, down (nn.Linear with bias); SwiGLU: gate, up, down (bias=False)")


@pytest.mark.parametrize("cls_name, ffn", [("FeedForward", "gelu"), ("SwiGLU", "swiglu")])
def test_feed_forward_matches_torch(student, rng, cls_name, ffn):
    x = torch.randn(2, 5, 16, generator=rng, dtype=torch.float64)
    state = ffn_state("", 16, 32, ffn, rng)
    grad_out = torch.randn(2, 5, 16, generator=rng, dtype=torch.float64)
    got = student.run(module_probe, cls_name, [16, 32], {}, state, [x], grad_out)
    w = {k: leaf(v) for k, v in state.items()}
    x_ = leaf(x)
    if ffn == "gelu":
        want = F.linear(F.gelu(F.linear(x_, w["up.weight"], w["up.bias"]), approximate="tanh"),
                        w["down.weight"], w["down.bias"])
        hint = "down(gelu(up(x))) with your tanh gelu"
    else:
        want = F.linear(F.silu(F.linear(x_, w["gate.weight"])) * F.linear(x_, w["up.weight"]), w["down.weight"])
        hint = "down(silu(gate(x)) * up(x)): silu(z) = z * sigmoid(z) on the gate branch only"
    want.backward(grad_out)
    check_module_against(got, want.detach(), [x_], {k: v.grad for k, v in w.items()}, state,
                         f"{cls_name}(16, 32) on x {shape(x)}", hint=hint)


@pytest.mark.parametrize("cls_name, ffn", [("FeedForward", "gelu"), ("SwiGLU", "swiglu")])
def test_feed_forward_dropout_on_its_output_in_train_mode_only(student, rng, cls_name, ffn):
    x = torch.randn(4, 50, 16, generator=rng, dtype=torch.float64)  # 3200 outputs
    state = ffn_state("", 16, 32, ffn, rng)
    train, evaluation, plain = student.run(dropout_probe, cls_name, [16, 32], {}, state, [x], 0.5, 0)
    assert_close(evaluation, plain, atol=1e-12, rtol=0, what=f"{cls_name}(16, 32, dropout=0.5) in eval mode vs dropout=0",
                 hint="dropout must do nothing in eval mode: use nn.Dropout (it follows .train()/.eval())")
    assert_dropout_on_output(train, evaluation, 0.5, what=f"{cls_name}(16, 32, dropout=0.5) in train mode",
                             hint="apply dropout once, to the output of down(...) (the module docstring), "
                                  "not to the hidden activations inside")


# ---------------------------------------------------------------- blocks

@pytest.mark.parametrize("cls_name, norm, ffn", [
    ("DecoderBlock", "layer", "gelu"), ("DecoderBlock", "rms", "swiglu"),
    ("EncoderBlock", "layer", "gelu"), ("CrossDecoderBlock", "rms", "gelu"),
])
def test_block_parameter_names_and_shapes(student, rng, cls_name, norm, ffn):
    got = student.run(init_state_probe, cls_name, [D, H, FF], {"norm": norm, "ffn": ffn})
    want = {k: list(v.shape) for k, v in block_state(cls_name, rng, norm, ffn).items()}
    assert_equal({k: list(v.shape) for k, v in got.items()}, want,
                 what=f"{cls_name}({D}, {H}, {FF}, norm={norm!r}, ffn={ffn!r}).state_dict() names and shapes",
                 hint="submodules norm1, attn, norm2, ffn (CrossDecoderBlock: norm1, self_attn, norm2, "
                      "cross_attn, norm3, ffn), built with make_norm and make_ffn")


def test_decoder_block_matches_torch_encoder_layer_with_causal_mask(student, rng):
    state = block_state("DecoderBlock", rng)
    x = torch.randn(2, 6, D, generator=rng, dtype=torch.float64)
    grad_out = torch.randn(2, 6, D, generator=rng, dtype=torch.float64)
    got = student.run(module_probe, "DecoderBlock", [D, H, FF], {}, state, [x], grad_out)
    oracle = torch_layer("DecoderBlock", state)
    x_ = leaf(x)
    out = oracle(x_, src_mask=~torch.ones(6, 6, dtype=torch.bool).tril())
    out.backward(grad_out)
    check_module_against(got, out.detach(), [x_], torch_layer_grads(oracle, state), state,
                         f"DecoderBlock({D}, {H}, {FF}) on x {shape(x)} vs TransformerEncoderLayer(norm_first=True), causal",
                         hint="pre-norm: x = x + attn(norm1(x)); x = x + ffn(norm2(x)); the attention is causal")


def test_encoder_block_matches_torch_with_padding_mask(student, rng):
    B, T = 3, 7
    state = block_state("EncoderBlock", rng)
    x = torch.randn(B, T, D, generator=rng, dtype=torch.float64)
    valid = torch.arange(T)[None, :] < torch.tensor([7, 4, 1])[:, None]  # (B, T): real tokens
    grad_out = torch.randn(B, T, D, generator=rng, dtype=torch.float64)
    got = student.run(module_probe, "EncoderBlock", [D, H, FF], {}, state, [x, valid[:, None, None, :]], grad_out)
    oracle = torch_layer("EncoderBlock", state)
    x_ = leaf(x)
    out = oracle(x_, src_key_padding_mask=~valid)
    out.backward(grad_out)
    check_module_against(got, out.detach(), [x_], torch_layer_grads(oracle, state), state,
                         f"EncoderBlock on x {shape(x)} with a padding mask (lengths 7, 4, 1)",
                         hint="an encoder is not causal: pass the given mask to attention and nothing else")


def test_cross_decoder_block_matches_torch_decoder_layer(student, rng):
    B, T, S = 2, 5, 8
    state = block_state("CrossDecoderBlock", rng)
    x = torch.randn(B, T, D, generator=rng, dtype=torch.float64)
    memory = torch.randn(B, S, D, generator=rng, dtype=torch.float64)
    mem_valid = torch.arange(S)[None, :] < torch.tensor([8, 3])[:, None]
    grad_out = torch.randn(B, T, D, generator=rng, dtype=torch.float64)
    got = student.run(module_probe, "CrossDecoderBlock", [D, H, FF], {}, state,
                      [x, memory, mem_valid[:, None, None, :]], grad_out)
    oracle = torch_layer("CrossDecoderBlock", state)
    x_, m_ = leaf(x), leaf(memory)
    out = oracle(x_, m_, tgt_mask=~torch.ones(T, T, dtype=torch.bool).tril(), memory_key_padding_mask=~mem_valid)
    out.backward(grad_out)
    check_module_against(got, out.detach(), [x_, m_], torch_layer_grads(oracle, state), state,
                         f"CrossDecoderBlock on x {shape(x)}, memory {shape(memory)} vs TransformerDecoderLayer",
                         hint="causal self-attention on norm1(x); then cross-attention with queries from "
                              "norm2(x) and keys and values from memory (as given), masked by memory_mask; "
                              "then ffn(norm3(x)); each added to x")


def test_decoder_block_modern_style_rms_swiglu(student):
    snap, state = SNAP["modern"], stored_state("modern")
    got = student.run(module_probe, "DecoderBlock", [SD, SH, SFF], {"norm": "rms", "ffn": "swiglu"}, state,
                      [snap["x"]], snap["grad_out"])
    got_out, (got_gx,), got_grads = got
    what = f"DecoderBlock({SD}, {SH}, {SFF}, norm='rms', ffn='swiglu') on x {shape(snap['x'])}"
    hint = "norm= and ffn= choose the parts: RMSNorm and SwiGLU here, in the same pre-norm wiring"
    assert_close(got_out, snap["out"], atol=1e-9, rtol=1e-7, what=f"{what}: output", hint=hint)
    assert_close(got_gx, snap["x_grad"], atol=1e-9, rtol=1e-7, what=f"{what}: gradient of x", hint=hint)
    assert_close(got_grads, stored_state("modern", "grad."), atol=1e-9, rtol=1e-7,
                 what=f"{what}: parameter gradients", hint=hint)


def test_decoder_block_is_causal(student, rng):
    state = block_state("DecoderBlock", rng)
    x = torch.randn(1, 8, D, generator=rng, dtype=torch.float64)
    changed = x.clone()
    changed[:, 5:] = torch.randn(1, 3, D, generator=rng, dtype=torch.float64)
    ones = torch.ones_like(x)
    before = student.run(module_probe, "DecoderBlock", [D, H, FF], {}, state, [x], ones)[0]
    after = student.run(module_probe, "DecoderBlock", [D, H, FF], {}, state, [changed], ones)[0]
    assert_close(after[:, :5], before[:, :5], atol=1e-12, rtol=0,
                 what="DecoderBlock outputs at positions 0..4 when only positions 5..7 of the input change",
                 hint="a decoder must not look ahead: use causal_mask(T) in self-attention")


@pytest.mark.parametrize("cls_name", ["DecoderBlock", "EncoderBlock", "CrossDecoderBlock"])
def test_block_with_silent_sublayers_is_the_identity(student, rng, cls_name):
    """With the attention output projections and the FFN's down projection at zero,
    every sublayer adds 0 and a pre-norm block passes x through unchanged."""
    state = block_state(cls_name, rng)
    for k in state:
        if k.endswith("out_proj.weight") or k.startswith("ffn.down."):
            state[k] = torch.zeros_like(state[k])
    x = torch.randn(2, 5, D, generator=rng, dtype=torch.float64) * 3 + 1
    inputs = [x] + ([torch.randn(2, 4, D, generator=rng, dtype=torch.float64), None] if cls_name == "CrossDecoderBlock"
                    else [None] if cls_name == "EncoderBlock" else [])
    out = student.run(module_probe, cls_name, [D, H, FF], {}, state, inputs, torch.ones_like(x))[0]
    assert_close(out, x, atol=1e-12, rtol=0, what=f"{cls_name} whose sublayers all output 0, on x {shape(x)}",
                 hint="each sublayer's result is *added* to x (the residual), and x itself is never "
                      "normalised: normalise only the copy a sublayer reads (pre-norm, not post-norm)")


def test_decoder_block_applies_rope_to_queries_and_keys(student):
    snap = SNAP["rope"]
    x, positions = snap["x"], snap["positions"]
    got = student.run(rope_block_probe, SH, 16, stored_state("rope"), x, positions)
    assert_close(got, snap["out"], atol=1e-5, rtol=1e-4,
                 what=f"DecoderBlock with RoPE on x {shape(x)}, positions {positions.tolist()}",
                 hint="rotate q and k (not v) after splitting heads and before the scores; positions of "
                      "shape (B, T) become (B, 1, T) to broadcast over heads")


BLOCK_DROPOUT_CASES = {
    "decoder": ("DecoderBlock", {}, 0), "decoder-rope": ("DecoderBlock", {"norm": "rms", "ffn": "swiglu"}, 16),
    "encoder": ("EncoderBlock", {}, 0), "cross-decoder": ("CrossDecoderBlock", {}, 0)}


@pytest.mark.parametrize("case", list(BLOCK_DROPOUT_CASES))
def test_block_dropout_drops_every_sublayer_in_train_mode_only(student, rng, case):
    """With dropout=1.0 in train mode every sublayer's output is dropped, so the block adds
    nothing to x; in eval mode dropout does nothing."""
    cls_name, kwargs, rope_max_T = BLOCK_DROPOUT_CASES[case]
    state = block_state(cls_name, rng, kwargs.get("norm", "layer"), kwargs.get("ffn", "gelu"))
    x = torch.randn(2, 5, D, generator=rng, dtype=torch.float64)
    inputs = [x] + ([torch.randn(2, 4, D, generator=rng, dtype=torch.float64)] if cls_name == "CrossDecoderBlock" else [])
    what = f"{cls_name}({D}, {H}, {FF}, dropout=1.0{', with RoPE' if rope_max_T else ''})"
    train, evaluation, plain = student.run(dropout_probe, cls_name, [D, H, FF], kwargs, state, inputs, 1.0, rope_max_T)
    assert_close(evaluation, plain, atol=1e-12, rtol=0, what=f"{what} in eval mode vs dropout=0",
                 hint="dropout must do nothing in eval mode: use nn.Dropout (it follows .train()/.eval())")
    assert_close(train, x, atol=1e-12, rtol=0, what=f"{what} in train mode: every sublayer's output is dropped, "
                                                    "so the output must be x itself",
                 hint="pass dropout to every attention and feed-forward (they drop their own output)"
                      + ("; the RoPE path of self_attention must apply attn.dropout too" if rope_max_T else "")
                      + "; never drop the residual stream x itself")

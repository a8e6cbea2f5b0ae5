"""Public tests for unit u03, positions.

Each test builds inputs here, runs a probe against your package with
`student.run`, and compares with an oracle computed here: torch's embedding
lookup, the formula from "Attention Is All You Need" written out, and RoPE
written independently with complex numbers. Run them with
`llmfs check u03` or `pytest exercises/tests -m u03`.
"""


import pytest
import torch
import torch.nn.functional as F

from grader.testing import assert_close, assert_equal

pytestmark = pytest.mark.u03


# ---------------------------------------------------------------- probes

def state_shapes_probe(pkg, cls_name, args):
    m = getattr(pkg.embeddings, cls_name)(*args)
    return {name: list(t.shape) for name, t in m.state_dict().items()}


def lookup_probe(pkg, cls_name, weight, ids, grad_out):
    """Look ids up in a table holding `weight`; backpropagate grad_out if given."""
    m = getattr(pkg.embeddings, cls_name)(*weight.shape).to(weight.dtype)
    m.load_state_dict({"weight": weight})
    out = m(ids)
    if grad_out is None:
        return out.detach(), None
    out.backward(grad_out)
    return out.detach(), m.weight.grad


def sinusoidal_probe(pkg, T, dim):
    return pkg.embeddings.sinusoidal_positions(T, dim)


def rope_probe(pkg, head_dim, max_T, theta, x, positions):
    rope = pkg.embeddings.RotaryEmbedding(head_dim, max_T, theta)
    return rope(x, positions).detach()


# ---------------------------------------------------------------- oracles

def shape(t):
    return tuple(t.shape)


def sinusoid_formula(T, dim):
    """PE[pos, 2i] = sin(pos / 10000^(2i/dim)), PE[pos, 2i+1] = cos(...), column by column."""
    pe = torch.zeros(T, dim, dtype=torch.float64)
    pos = torch.arange(T, dtype=torch.float64)
    for i in range(dim // 2):
        angle = pos / 10000.0 ** (2 * i / dim)
        pe[:, 2 * i] = torch.sin(angle)
        pe[:, 2 * i + 1] = torch.cos(angle)
    return pe.float()


def rope_oracle(x, positions, theta=10000.0):
    """RoPE with interleaved pairs, as complex multiplication: z_i = x[2i] + j x[2i+1],
    z_i * exp(j * pos * theta^(-2i/d)), computed in complex128."""
    d = x.shape[-1]
    xd = x.to(torch.float64)
    z = torch.complex(xd[..., 0::2], xd[..., 1::2])
    freq = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angle = positions.to(torch.float64)[..., None] * freq
    z = z * torch.polar(torch.ones_like(angle), angle)
    return torch.stack([z.real, z.imag], dim=-1).flatten(-2).to(x.dtype)


# ---------------------------------------------------------------- Embedding

@pytest.mark.parametrize("cls_name, args, want, hint", [
    ("Embedding", [10, 4], {"weight": [10, 4]},
     "one nn.Parameter called weight, (num_embeddings, dim); no nn.Embedding inside"),
    ("LearnedPositionalEmbedding", [16, 8], {"weight": [16, 8]}, "one table `weight` of shape (max_T, dim)"),
    ("RotaryEmbedding", [8, 32], {},
     "register the cos/sin tables with persistent=False: they are not learned, and checkpoints "
     "must load into any correct implementation"),
], ids=["Embedding", "LearnedPositionalEmbedding", "RotaryEmbedding"])
def test_state_dict_names_and_shapes(student, cls_name, args, want, hint):
    got = student.run(state_shapes_probe, cls_name, args)
    assert_equal(got, want, what=f"{cls_name}({', '.join(map(str, args))}).state_dict() names and shapes", hint=hint)


def test_embedding_returns_the_rows_of_weight(student, rng):
    weight = torch.randn(11, 6, generator=rng)
    ids = torch.tensor([[3, 0, 10, 3], [7, 7, 1, 2]])
    got, _ = student.run(lookup_probe, "Embedding", weight, ids, None)
    assert_equal(got, F.embedding(ids, weight), what=f"Embedding lookup of ids {shape(ids)}",
                 hint="out[b, t] is weight[ids[b, t]]: the output shape is ids.shape + (dim,)")


def test_embedding_gradient_reaches_only_the_rows_used_and_adds_up(student, rng):
    weight = torch.randn(9, 5, generator=rng, dtype=torch.float64)
    ids = torch.tensor([[2, 4, 2], [8, 2, 4]])  # 2 three times, 4 twice; rows 0, 1, 3, 5, 6, 7 unused
    grad_out = torch.randn(2, 3, 5, generator=rng, dtype=torch.float64)
    _, grad = student.run(lookup_probe, "Embedding", weight, ids, grad_out)
    want = torch.zeros_like(weight).index_add_(0, ids.flatten(), grad_out.reshape(-1, 5))
    assert_close(grad, want, atol=1e-12, rtol=1e-12, what="d(loss)/d(weight) of Embedding for repeated ids",
                 hint="index the Parameter itself (no .data, no torch.tensor copies): autograd then "
                      "sums the gradient of every use of a row and leaves unused rows at 0")


# ---------------------------------------------------------------- sinusoidal

def test_sinusoidal_position_zero_is_sin_0_cos_0(student):
    got = student.run(sinusoidal_probe, 1, 8)
    assert_close(got, sinusoid_formula(1, 8), atol=1e-6, rtol=0, what="sinusoidal_positions(1, 8), position 0",
                 hint="row 0 is [0, 1, 0, 1, ...]: sines in the even columns, cosines in the odd ones")


@pytest.mark.parametrize("T, dim", [(50, 16), (7, 6), (128, 64)])
def test_sinusoidal_matches_the_formula(student, T, dim):
    got = student.run(sinusoidal_probe, T, dim)
    assert_close(got, sinusoid_formula(T, dim), atol=5e-5, rtol=0, what=f"sinusoidal_positions({T}, {dim})",
                 hint="PE[pos, 2i] = sin(pos / 10000**(2i/dim)), PE[pos, 2i+1] = cos(same angle); "
                      "columns interleaved, not sines first then cosines")


# ---------------------------------------------------------------- learned positions

def test_learned_positions_look_up_the_positions_given(student, rng):
    weight = torch.randn(12, 4, generator=rng)
    positions = torch.tensor([[5, 0, 11, 3], [9, 9, 2, 7]])  # not 0..T-1
    grad_out = torch.randn(2, 4, 4, generator=rng)
    got, grad = student.run(lookup_probe, "LearnedPositionalEmbedding", weight, positions, grad_out)
    assert_equal(got, F.embedding(positions, weight), what=f"learned positions for positions {positions.tolist()}",
                 hint="forward(positions) returns weight[positions], whatever positions are")
    want = torch.zeros_like(weight).index_add_(0, positions.flatten(), grad_out.reshape(-1, 4))
    assert_close(grad, want, atol=1e-6, rtol=1e-6, what="d(loss)/d(weight) of LearnedPositionalEmbedding")


# ---------------------------------------------------------------- RoPE

def test_rope_at_position_zero_is_the_identity(student, rng):
    x = torch.randn(3, 16, generator=rng)
    got = student.run(rope_probe, 16, 8, 10000.0, x, torch.zeros(3, dtype=torch.int64))
    assert_close(got, x, atol=1e-6, rtol=1e-6, what="RoPE of x (3, 16) at position 0",
                 hint="the angle is position * frequency, so position 0 rotates by nothing")


def test_rope_matches_complex_rotation_at_shuffled_positions(student, rng):
    B, H, T, d = 2, 3, 7, 8
    x = torch.randn(B, H, T, d, generator=rng)
    positions = torch.randperm(40, generator=rng)[:T]  # shuffled, with gaps
    got = student.run(rope_probe, d, 40, 10000.0, x, positions)
    assert_close(got, rope_oracle(x, positions), atol=1e-4, rtol=1e-4,
                 what=f"RoPE of x {shape(x)} at positions {positions.tolist()}",
                 hint="rotate pair (x[2i], x[2i+1]) by positions[t] * theta**(-2i/head_dim); use the "
                      "positions given, not 0..T-1, and interleaved pairs, not the two halves")


def test_rope_positions_can_differ_per_batch_element(student, rng):
    x = torch.randn(2, 4, 5, 16, generator=rng)
    positions = torch.tensor([[[0, 1, 2, 3, 4]], [[30, 12, 31, 5, 0]]])  # (B, 1, T)
    got = student.run(rope_probe, 16, 32, 10000.0, x, positions)
    assert_close(got, rope_oracle(x, positions), atol=1e-4, rtol=1e-4,
                 what=f"RoPE of x {shape(x)} with positions {shape(positions)}, one row per batch element",
                 hint="look the angles up at `positions` and let them broadcast against x.shape[:-1]")


def test_rope_uses_theta(student, rng):
    x = torch.randn(6, 12, generator=rng)
    positions = torch.tensor([4, 1, 0, 9, 2, 7])
    got = student.run(rope_probe, 12, 10, 100.0, x, positions)
    assert_close(got, rope_oracle(x, positions, theta=100.0), atol=1e-4, rtol=1e-4,
                 what="RoPE with theta=100", hint="the frequencies are theta**(-2i/head_dim), not 10000**(...)")


def test_rope_scores_depend_only_on_the_offset(student, rng):
    """q rotated to position m, k rotated to position n: q.k is a function of m - n."""
    d, T = 16, 24
    q = torch.randn(d, generator=rng, dtype=torch.float64)
    k = torch.randn(d, generator=rng, dtype=torch.float64)
    order = torch.randperm(T, generator=rng)
    rotated = student.run(rope_probe, d, T, 10000.0, torch.stack([q, k]).expand(T, 2, d).transpose(0, 1).contiguous(),
                          order)  # (2, T, d): q and k at every position, in shuffled order
    q_at, k_at = torch.empty(T, d, dtype=torch.float64), torch.empty(T, d, dtype=torch.float64)
    q_at[order], k_at[order] = rotated[0], rotated[1]
    scores = q_at @ k_at.T  # scores[m, n] = rope(q, m) . rope(k, n)
    for offset in (-5, 0, 1, 7):
        diag = torch.diagonal(scores, offset=offset)
        assert_close(diag, diag[:1].expand_as(diag), atol=1e-5, rtol=1e-5,
                     what=f"rope(q, m) . rope(k, m + {offset}) for m = 0 .. {T - abs(offset) - 1}",
                     hint="each pair (x[2i], x[2i+1]) must be *rotated* (a 2x2 rotation by the same angle "
                          "for q and k at the same position), so that only the offset survives in q.k")
    assert_close(torch.linalg.vector_norm(q_at, dim=-1), torch.linalg.vector_norm(q).expand(T),
                 atol=1e-5, rtol=1e-5, what="the length of rope(q, m)", hint="a rotation keeps lengths")

"""Hidden tests for unit u03, positions: random shapes, dtypes, gradients, edges.

Never shipped to students. Failure summaries (the first line) name the input,
never the expected values.
"""

import pytest
import torch
import torch.nn.functional as F

from grader.testing import assert_close, assert_equal

pytestmark = pytest.mark.u03


# ---------------------------------------------------------------- probes

def table_probe(pkg, cls_name, weight, ids, grad_out):
    m = getattr(pkg.embeddings, cls_name)(*weight.shape).to(weight.dtype)
    m.load_state_dict({"weight": weight})
    out = m(ids)
    out.backward(grad_out)
    return out.detach(), m.weight.grad


def raises_probe(pkg, call, args):
    """The name of the exception the named call raises, or 'nothing'."""
    try:
        if call == "sinusoidal_positions":
            pkg.embeddings.sinusoidal_positions(*args)
        else:
            max_T, dim, positions = args
            pkg.embeddings.LearnedPositionalEmbedding(max_T, dim)(positions)
    except NotImplementedError:
        raise  # a stub is not an answer
    except Exception as e:  # noqa: BLE001 - the type is the answer
        return type(e).__name__
    return "nothing"


def sinusoidal_probe(pkg, T, dim):
    return pkg.embeddings.sinusoidal_positions(T, dim)


def rope_grad_probe(pkg, head_dim, max_T, theta, x, positions, grad_out):
    rope = pkg.embeddings.RotaryEmbedding(head_dim, max_T, theta)
    x = x.clone().requires_grad_(True)
    out = rope(x, positions)
    out.backward(grad_out)
    return out.detach(), x.grad


# ---------------------------------------------------------------- oracles

def rope_by_complex(x, positions, theta):
    """Interleaved-pair RoPE as complex multiplication, in complex128."""
    d = x.shape[-1]
    xd = x.to(torch.float64)
    z = torch.complex(xd[..., 0::2], xd[..., 1::2])
    angle = positions.to(torch.float64)[..., None] * theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = z * torch.polar(torch.ones_like(angle), angle)
    return torch.stack([z.real, z.imag], dim=-1).flatten(-2).to(x.dtype)


def shape(t):
    return tuple(t.shape)


# ---------------------------------------------------------------- tables

@pytest.mark.parametrize("ids_shape", [(), (13,), (2, 3, 5)], ids=["0-d", "1-d", "3-d"])
def test_embedding_any_ids_shape_float64_with_gradient(student, rng, ids_shape):
    weight = torch.randn(7, 3, generator=rng, dtype=torch.float64)
    ids = torch.randint(0, 7, ids_shape, generator=rng)
    grad_out = torch.randn(*ids_shape, 3, generator=rng, dtype=torch.float64)
    out, grad = student.run(table_probe, "Embedding", weight, ids, grad_out)
    assert_close(out, F.embedding(ids, weight), atol=0, rtol=0, what=f"Embedding lookup, ids of shape {ids_shape}")
    want = torch.zeros_like(weight).index_add_(0, ids.reshape(-1), grad_out.reshape(-1, 3))
    assert_close(grad, want, atol=1e-12, rtol=1e-12, what=f"weight gradient, ids of shape {ids_shape}")


def test_learned_positions_gradient_for_repeated_positions(student, rng):
    weight = torch.randn(20, 6, generator=rng, dtype=torch.float64)
    positions = torch.tensor([[19, 0, 19, 4], [4, 4, 0, 11]])
    grad_out = torch.randn(2, 4, 6, generator=rng, dtype=torch.float64)
    out, grad = student.run(table_probe, "LearnedPositionalEmbedding", weight, positions, grad_out)
    assert_close(out, F.embedding(positions, weight), atol=0, rtol=0, what="learned positions, repeated positions")
    want = torch.zeros_like(weight).index_add_(0, positions.reshape(-1), grad_out.reshape(-1, 6))
    assert_close(grad, want, atol=1e-12, rtol=1e-12, what="learned positions weight gradient, repeated positions")


@pytest.mark.parametrize("positions", [[0, 8], [-1, 2]], ids=["past-the-end", "negative"])
def test_learned_positions_out_of_range_raise_index_error(student, positions):
    got = student.run(raises_probe, "LearnedPositionalEmbedding", [8, 4, torch.tensor(positions)])
    assert_equal(got, "IndexError", what=f"LearnedPositionalEmbedding(8, 4) at positions {positions}",
                 hint="a negative index would silently read the end of the table")


# ---------------------------------------------------------------- sinusoidal

def test_sinusoidal_long_and_wide(student):
    T, dim = 1024, 128
    got = student.run(sinusoidal_probe, T, dim)
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    angle = pos * torch.exp(-torch.log(torch.tensor(10000.0, dtype=torch.float64))
                            * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    want = torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).reshape(T, dim).float()
    assert_close(got, want, atol=1e-3, rtol=0, what=f"sinusoidal_positions({T}, {dim})")


def test_sinusoidal_odd_dim_raises_value_error(student):
    got = student.run(raises_probe, "sinusoidal_positions", [4, 7])
    assert_equal(got, "ValueError", what="sinusoidal_positions(4, 7), odd dim")


# ---------------------------------------------------------------- RoPE

@pytest.mark.parametrize("case", [
    ((3, 2, 9, 32), (3, 1, 9), 200, 10000.0),
    ((11, 2), (11,), 64, 10000.0),
    ((2, 5, 64), (2, 5), 300, 500.0),
], ids=["batched-heads", "one-pair", "wide-theta500"])
def test_rope_forward_and_backward_random(student, rng, case):
    x_shape, pos_shape, max_T, theta = case
    x = torch.randn(*x_shape, generator=rng)
    positions = torch.randint(0, max_T, pos_shape, generator=rng)
    positions.view(-1)[0] = max_T - 1  # the last row of the table
    grad_out = torch.randn(*x_shape, generator=rng)
    out, gx = student.run(rope_grad_probe, x_shape[-1], max_T, theta, x, positions, grad_out)
    assert_close(out, rope_by_complex(x, positions, theta), atol=5e-4, rtol=1e-4,
                 what=f"RoPE of x {x_shape}, positions {pos_shape} up to {max_T - 1}, theta={theta}")
    # A rotation's gradient is the inverse rotation: the same angles, negated.
    assert_close(gx, rope_by_complex(grad_out, -positions, theta), atol=5e-4, rtol=1e-4,
                 what=f"d(loss)/dx through RoPE, x {x_shape}")


def test_rope_keeps_float64(student, rng):
    x = torch.randn(2, 3, 6, 8, generator=rng, dtype=torch.float64)
    positions = torch.tensor([5, 0, 3, 17, 2, 40])
    out, _ = student.run(rope_grad_probe, 8, 41, 10000.0, x, positions, torch.ones_like(x))
    assert_close(out, rope_by_complex(x, positions, 10000.0), atol=5e-5, rtol=1e-5,
                 what="RoPE of a float64 x (2, 3, 6, 8): the output keeps x's dtype")


def test_rope_scores_depend_only_on_the_offset_far_out(student, rng):
    d, max_T = 32, 512
    q = torch.randn(d, generator=rng, dtype=torch.float64)
    k = torch.randn(d, generator=rng, dtype=torch.float64)
    m = torch.tensor([0, 100, 300, 490])
    x = torch.stack([q.expand(4, d), k.expand(4, d)])  # (2, 4, d)
    pos = torch.stack([m, m + 21])  # k is always 21 positions after q
    out, _ = student.run(rope_grad_probe, d, max_T, 10000.0, x, pos, torch.zeros_like(x))
    scores = (out[0] * out[1]).sum(-1)
    assert_close(scores, scores[:1].expand(4), atol=1e-4, rtol=1e-4,
                 what="rope(q, m) . rope(k, m + 21) for m = 0, 100, 300, 490")
    want = rope_by_complex(q[None], torch.tensor([0]), 10000.0) @ rope_by_complex(k[None], torch.tensor([21]), 10000.0).T
    assert_close(scores[0], want[0, 0], atol=1e-4, rtol=1e-4, what="rope(q, 0) . rope(k, 21)")

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

from grader.snapshots import load_snapshot
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


def fresh_weight_probe(pkg, cls_name, rows, dim):
    torch.manual_seed(0)
    return getattr(pkg.embeddings, cls_name)(rows, dim).weight.detach()


def raises_probe(pkg, call, args):
    """The name of the exception the call raises, or 'nothing'."""
    try:
        if call == "sinusoidal_positions":
            pkg.embeddings.sinusoidal_positions(*args)
        else:
            pkg.embeddings.RotaryEmbedding(*args)
    except NotImplementedError:
        raise  # a stub is not an answer
    except Exception as e:  # noqa: BLE001 - the type is the answer
        return type(e).__name__
    return "nothing"


def shape_or_error(call, *args):
    try:
        return list(call(*args).shape)
    except NotImplementedError:
        raise  # a stub is not an answer
    except Exception as e:  # noqa: BLE001 - reported by the judge, with a hint
        return f"{type(e).__name__}: {e}"


def empty_probe(pkg, ids, x, positions):
    """Shapes of Embedding, learned positions and RoPE on inputs with no tokens at all."""
    return [shape_or_error(pkg.embeddings.Embedding(10, 4), ids),
            shape_or_error(pkg.embeddings.LearnedPositionalEmbedding(10, 4), ids),
            shape_or_error(pkg.embeddings.RotaryEmbedding(x.shape[-1], 10), x, positions)]


# ---------------------------------------------------------------- snapshots
# torch has no sinusoidal table and no RoPE to compare with, so those tests
# compare with stored values: the probes below were run once on the
# reference (`python -m grader.snapshots --unit u03`) and their inputs and
# outputs kept in data/test_u03_positions.npz.

SINUSOID_SIZES = [(50, 16), (7, 6), (128, 32)]
ROPE_MAX_T = {"shuffled": 40, "per-batch": 32, "theta": 10}
ROPE_THETA = {"shuffled": 10000.0, "per-batch": 10000.0, "theta": 100.0}


def snapshot_sinusoids(pkg):
    return {f"sinusoidal_{T}x{dim}": {"table": pkg.embeddings.sinusoidal_positions(T, dim)}
            for T, dim in SINUSOID_SIZES}


def halves_to_pairs(x):
    """x[..., i] and x[..., i + d/2] moved next to each other: (x0, x_{d/2}, x1, x_{d/2+1}, ...)."""
    return torch.stack(x.chunk(2, dim=-1), dim=-1).flatten(-2)


def snapshot_rope(pkg):
    """RoPE outputs, and what common mistakes would output instead (to name the mistake)."""
    g = torch.Generator().manual_seed(3)
    inputs = {"shuffled": (torch.randn(2, 3, 7, 8, generator=g), torch.randperm(40, generator=g)[:7]),
              "per-batch": (torch.randn(2, 4, 5, 16, generator=g),
                            torch.tensor([[[0, 1, 2, 3, 4]], [[30, 12, 31, 5, 0]]])),
              "theta": (torch.randn(6, 12, generator=g), torch.tensor([4, 1, 0, 9, 2, 7]))}
    out = {}
    for case, (x, positions) in inputs.items():
        rope = pkg.embeddings.RotaryEmbedding(x.shape[-1], ROPE_MAX_T[case], ROPE_THETA[case])
        out[f"rope_{case}"] = {
            "x": x, "positions": positions, "out": rope(x, positions),
            # the same rotation, with positions 0 .. T-1 instead of those given
            "positions_ignored": rope(x, torch.arange(x.shape[-2])),
            # pairs (i, i + d/2), the GPT-NeoX convention: pair up the halves, rotate, split back
            "halves_paired": torch.cat(rope(halves_to_pairs(x), positions).unflatten(-1, (-1, 2)).unbind(-1), -1),
            # theta ignored: the default 10000
            "theta_ignored": pkg.embeddings.RotaryEmbedding(x.shape[-1], ROPE_MAX_T[case])(x, positions),
        }
    return out


SNAP = load_snapshot(__file__)

ROPE_MISTAKES = {
    "positions_ignored": "you rotated by 0 .. T-1: use the positions given (they may be shuffled or have gaps)",
    "halves_paired": "you paired x[i] with x[i + head_dim/2] (the GPT-NeoX halves); this course pairs "
                     "(x[2i], x[2i+1]), interleaved, as in the RoFormer paper",
    "theta_ignored": "you used 10000 instead of the theta given: freq = theta**(-2i/head_dim)",
}


def rope_hint(got, case, default):
    """The hint for the mistake whose output `got` matches, or `default`."""
    snap = SNAP[case]
    for mistake, hint in ROPE_MISTAKES.items():
        if not torch.allclose(snap[mistake], snap["out"], atol=1e-3) and got.shape == snap[mistake].shape \
                and torch.allclose(got, snap[mistake], atol=1e-4, rtol=1e-4):
            return hint
    return default


def shape(t):
    return tuple(t.shape)


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


@pytest.mark.parametrize("cls_name", ["Embedding", "LearnedPositionalEmbedding"])
def test_table_starts_standard_normal(student, cls_name):
    w = student.run(fresh_weight_probe, cls_name, 1000, 100).double().flatten()  # 100000 draws
    mean, std = float(w.mean()), float(w.std())
    kurtosis = float(((w - mean) ** 4).mean() / std ** 4)  # 3 for a normal, 1.8 for a uniform
    what = f"{cls_name}(1000, 100).weight at initialisation: mean {mean:.3f}, std {std:.3f}, kurtosis {kurtosis:.2f}"
    hint = "initialise weight with torch.randn (N(0, 1), like nn.Embedding): not rand (uniform), not scaled"
    assert_close(mean, 0.0, atol=0.02, rtol=0, what=what, hint=hint)
    assert_close(std, 1.0, atol=0.05, rtol=0, what=what, hint=hint)
    assert_close(kurtosis, 3.0, atol=0.3, rtol=0, what=what, hint=hint)


def test_empty_inputs_give_empty_outputs(student):
    ids = torch.zeros(2, 0, dtype=torch.int64)
    got = student.run(empty_probe, ids, torch.zeros(2, 3, 0, 8), torch.zeros(0, dtype=torch.int64))
    assert_equal(got, [[2, 0, 4], [2, 0, 4], [2, 3, 0, 8]],
                 what="shapes of Embedding, LearnedPositionalEmbedding (ids of shape (2, 0)) and RoPE "
                      "(x of shape (2, 3, 0, 8)) on inputs with no tokens",
                 hint="an empty tensor has no min() or max(): check the range of positions only when "
                      "there are some (positions.numel() > 0)")


@pytest.mark.parametrize("call, args", [("sinusoidal_positions", [4, 7]), ("RotaryEmbedding", [7, 16])],
                         ids=["sinusoidal", "rope"])
def test_odd_dimension_raises_value_error(student, call, args):
    got = student.run(raises_probe, call, args)
    assert_equal(got, "ValueError", what=f"{call}({', '.join(map(str, args))}): an odd dimension",
                 hint="dimensions come in pairs (sin/cos columns, rotated pairs): raise ValueError for an "
                      "odd one instead of silently dropping or misaligning the last column")


# ---------------------------------------------------------------- sinusoidal

def test_sinusoidal_position_zero_is_sin_0_cos_0(student):
    got = student.run(sinusoidal_probe, 1, 8)
    assert_close(got, torch.tensor([[0.0, 1.0] * 4]), atol=1e-6, rtol=0, what="sinusoidal_positions(1, 8), position 0",
                 hint="row 0 is [0, 1, 0, 1, ...] in float32: sines in the even columns, cosines in the odd ones")


@pytest.mark.parametrize("T, dim", SINUSOID_SIZES)
def test_sinusoidal_matches_the_formula(student, T, dim):
    got = student.run(sinusoidal_probe, T, dim)
    assert_close(got, SNAP[f"sinusoidal_{T}x{dim}"]["table"], atol=5e-5, rtol=0, what=f"sinusoidal_positions({T}, {dim})",
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
                 hint=("you wrote the rotated pairs back as two halves: interleave them (stack the new even "
                       "and odd values on a new last dim, then flatten it)")
                 if torch.equal(got, torch.cat([x[..., 0::2], x[..., 1::2]], -1)) else
                 "all three rows are at position 0, and the angle is position * frequency, so nothing "
                 "may rotate; if rows rotate, your angles do not come from `positions` (e.g. 0 .. T-1): "
                 "use the positions given")


def check_rope(student, case, what, hint):
    snap = SNAP[f"rope_{case}"]
    x, positions = snap["x"], snap["positions"]
    got = student.run(rope_probe, x.shape[-1], ROPE_MAX_T[case], ROPE_THETA[case], x, positions)
    assert_close(got, snap["out"], atol=1e-4, rtol=1e-4, what=what.format(x=shape(x), positions=positions.tolist()),
                 hint=rope_hint(got, f"rope_{case}", hint))


def test_rope_matches_the_reference_at_shuffled_positions(student):
    check_rope(student, "shuffled", "RoPE of x {x} at positions {positions}",
               "rotate pair (x[2i], x[2i+1]) by positions[t] * theta**(-2i/head_dim): "
               "out[2i] = x[2i] cos - x[2i+1] sin, out[2i+1] = x[2i] sin + x[2i+1] cos")


def test_rope_positions_can_differ_per_batch_element(student):
    check_rope(student, "per-batch", "RoPE of x {x} with positions (B, 1, T) = {positions}, one row per batch element",
               "look the angles up at `positions` and let them broadcast against x.shape[:-1]")


def test_rope_uses_theta(student):
    # This test changes only theta: if the RoPE tests above fail too, fix them first.
    check_rope(student, "theta", "RoPE of x {x} at positions {positions} with theta=100",
               "this test differs from the ones above only in theta=100; if those pass, check that "
               "theta is used in the frequencies (and nowhere else)")


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

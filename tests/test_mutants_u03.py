"""u03's public tests catch the bugs students really make with embeddings and positions.

Each mutant is the reference with one realistic bug planted by a text
substitution (see tests/test_mutants.py for the idea).
"""

import pytest

from kit import assert_mutant_caught

ROPE_TAIL = """        x_even, x_odd = x[..., 0::2], x[..., 1::2]
        out_even = x_even * cos - x_odd * sin
        out_odd = x_even * sin + x_odd * cos
        return torch.stack([out_even, out_odd], dim=-1).flatten(-2)"""

# (description, old text, new text[, what the first failure's message must say]), all in embeddings.py
MUTANTS = [
    ("Embedding looks up through .data, so no gradient reaches weight",
     "return self.weight[ids]", "return self.weight.data[ids]"),
    ("Embedding weight is a plain tensor, not a Parameter",
     "self.weight = nn.Parameter(torch.randn(num_embeddings, dim))",
     "self.weight = torch.randn(num_embeddings, dim)"),
    ("sinusoidal: sin and cos columns swapped",
     "pe[:, 0::2] = torch.sin(angle)\n    pe[:, 1::2] = torch.cos(angle)",
     "pe[:, 0::2] = torch.cos(angle)\n    pe[:, 1::2] = torch.sin(angle)"),
    ("sinusoidal: base 1000 instead of 10000",
     "freq = 10000.0 ** (-torch.arange(0, dim, 2", "freq = 1000.0 ** (-torch.arange(0, dim, 2"),
    ("sinusoidal: exponent i/dim instead of 2i/dim",
     "freq = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)",
     "freq = 10000.0 ** (-torch.arange(0, dim // 2, dtype=torch.float64) / dim)"),
    ("sinusoidal: sines in the first half, cosines in the second",
     "pe[:, 0::2] = torch.sin(angle)\n    pe[:, 1::2] = torch.cos(angle)",
     "pe[:, :dim // 2] = torch.sin(angle)\n    pe[:, dim // 2:] = torch.cos(angle)"),
    ("sinusoidal: returns float64",
     "return pe.float()", "return pe", "float32"),
    ("learned positions: ignores the positions given, uses 0..T-1",
     "return super().forward(positions)",
     "return super().forward(torch.arange(positions.shape[-1]).expand_as(positions))"),
    ("RoPE ignores positions and rotates by 0..T-1",
     "cos = self.cos[positions].to(x.dtype)  # (..., T, head_dim/2)\n"
     "        sin = self.sin[positions].to(x.dtype)",
     "cos = self.cos[:x.shape[-2]].to(x.dtype)\n        sin = self.sin[:x.shape[-2]].to(x.dtype)",
     "use the positions given"),
    ("RoPE pairs the two halves (GPT-NeoX) instead of (2i, 2i+1)",
     ROPE_TAIL,
     ROPE_TAIL.replace("x[..., 0::2], x[..., 1::2]", "x.chunk(2, dim=-1)")
              .replace("torch.stack([out_even, out_odd], dim=-1).flatten(-2)",
                       "torch.cat([out_even, out_odd], dim=-1)"),
     "GPT-NeoX halves"),
    ("RoPE writes the rotated pairs back as halves, not interleaved",
     "return torch.stack([out_even, out_odd], dim=-1).flatten(-2)",
     "return torch.cat([out_even, out_odd], dim=-1)", "as two halves"),
    ("RoPE with a sign error: not a rotation",
     "out_even = x_even * cos - x_odd * sin", "out_even = x_even * cos + x_odd * sin"),
    ("RoPE rotates the wrong way (angle -a)",
     ROPE_TAIL,
     ROPE_TAIL.replace("x_even * cos - x_odd * sin", "x_even * cos + x_odd * sin")
              .replace("x_even * sin + x_odd * cos", "-x_even * sin + x_odd * cos")),
    ("RoPE ignores theta",
     "freq = theta ** (", "freq = 10000.0 ** (", "instead of the theta given"),
    ("RoPE accepts an odd head_dim",
     'if head_dim % 2 != 0:\n            raise ValueError(f"head_dim must be even, got {head_dim}")', "pass",
     "raise ValueError"),
    ("learned positions crash on an empty positions tensor",
     "if positions.numel() and (positions.min() < 0", "if (positions.min() < 0", "positions.numel() > 0"),
    ("Embedding initialised uniform with std 1 instead of N(0, 1)",
     "nn.Parameter(torch.randn(num_embeddings, dim))",
     "nn.Parameter((torch.rand(num_embeddings, dim) - 0.5) * 12 ** 0.5)", "not rand (uniform)"),
    ("Embedding initialised at GPT-2's scale N(0, 0.02^2) instead of N(0, 1)",
     "nn.Parameter(torch.randn(num_embeddings, dim))",
     "nn.Parameter(0.02 * torch.randn(num_embeddings, dim))", "torch.randn (N(0, 1)"),
    ("RoPE frequencies use i/head_dim instead of 2i/head_dim",
     "freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)",
     "freq = theta ** (-torch.arange(0, head_dim // 2, dtype=torch.float64) / head_dim)"),
    ("RoPE tables saved in the state_dict",
     'self.register_buffer("cos", torch.cos(angle).float(), persistent=False)',
     'self.register_buffer("cos", torch.cos(angle).float())'),
]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_public_tests_catch_the_mutant(tmp_path, mutant):
    description, old, new, *says = mutant
    assert_mutant_caught(tmp_path, "u03", "embeddings", description, old, new, says=says[0] if says else None)


# Bugs only the hidden tests are there to catch.
HIDDEN_MUTANTS = [
    ("learned positions accept negative positions (they wrap around)",
     "if positions.numel() and (positions.min() < 0 or positions.max() >= self.max_T):",
     "if positions.numel() and positions.max() >= self.max_T:"),
    ("sinusoidal accepts an odd dim",
     'if dim % 2 != 0:\n        raise ValueError(f"dim must be even, got {dim}")', "pass"),
]


@pytest.mark.parametrize("description, old, new", HIDDEN_MUTANTS, ids=[m[0] for m in HIDDEN_MUTANTS])
def test_hidden_tests_catch_the_mutant(tmp_path, description, old, new):
    assert_mutant_caught(tmp_path, "u03", "embeddings", description, old, new, tests="grader/hidden")

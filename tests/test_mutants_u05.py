"""u05's public tests catch the bugs students really make with norms, FFNs and blocks.

Each mutant is the reference with one realistic bug planted by a text
substitution (see tests/test_mutants.py for the idea). A substitution
replaces every occurrence of its text in layers.py.
"""

import pytest

from kit import assert_mutant_caught

LN_STATS = """        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)"""
RMS = """        rms = torch.sqrt((x ** 2).mean(dim=-1, keepdim=True) + self.eps)"""
SWIGLU = """        g = self.gate(x)
        return self.dropout(self.down(g * torch.sigmoid(g) * self.up(x)))"""
DECODER = """        x = x + self_attention(self.attn, self.norm1(x), mask, self.rope, positions)
        return x + self.ffn(self.norm2(x))"""

# (description, old text, new text[, what the first failure's message must say]), all in layers.py
MUTANTS = [
    ("LayerNorm with the unbiased variance (divide by dim - 1)",
     LN_STATS, LN_STATS.replace("((x - mean) ** 2).mean(dim=-1, keepdim=True)", "x.var(dim=-1, keepdim=True)")),
    ("LayerNorm with eps outside the square root",
     "(x - mean) / torch.sqrt(var + self.eps)", "(x - mean) / (torch.sqrt(var) + self.eps)"),
    ("LayerNorm over dim 1 instead of the last dim",
     LN_STATS, LN_STATS.replace("dim=-1", "dim=1")),
    ("norms ignore the eps argument",
     "self.eps = eps", "self.eps = 1e-5"),
    ("LayerNorm without its bias",
     "* self.weight + self.bias", "* self.weight", "the bias added"),
    ("LayerNorm's mean detached: right forward, wrong gradient",
     "mean = x.mean(dim=-1, keepdim=True)", "mean = x.mean(dim=-1, keepdim=True).detach()", "no .detach()"),
    ("RMSNorm subtracts the mean",
     RMS, "        x = x - x.mean(dim=-1, keepdim=True)\n" + RMS),
    ("RMSNorm with eps outside the square root",
     RMS, "        rms = torch.sqrt((x ** 2).mean(dim=-1, keepdim=True)) + self.eps"),
    ("RMSNorm with the sum of squares instead of the mean",
     RMS, RMS.replace("(x ** 2).mean(", "(x ** 2).sum("), "not their sum"),
    ("exact (erf) GELU instead of the tanh approximation",
     "return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))",
     "return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))"),
    ("GELU without the sqrt(2/pi) factor",
     "torch.tanh(math.sqrt(2.0 / math.pi) * (x", "torch.tanh((x"),
    ("FeedForward without biases",
     "self.up = nn.Linear(dim, hidden)\n", "self.up = nn.Linear(dim, hidden, bias=False)\n"),
    ("FeedForward with ReLU",
     "self.down(gelu(self.up(x)))", "self.down(torch.relu(self.up(x)))"),
    ("SwiGLU with gate and up swapped",
     SWIGLU, SWIGLU.replace("self.gate(x)", "GATE").replace("self.up(x)", "self.gate(x)").replace("GATE", "self.up(x)")),
    ("SwiGLU with sigmoid instead of silu (plain GLU)",
     "g * torch.sigmoid(g) * self.up(x)", "torch.sigmoid(g) * self.up(x)"),
    ("post-norm DecoderBlock",
     DECODER, "        x = self.norm1(x + self_attention(self.attn, x, mask, self.rope, positions))\n"
              "        return self.norm2(x + self.ffn(x))"),
    ("DecoderBlock normalises the residual stream itself",
     DECODER, "        x = self.norm1(x)\n" + DECODER.replace("self.norm1(x)", "x")),
    ("DecoderBlock without the attention residual",
     "x = x + self_attention(", "x = self_attention("),
    ("blocks without the feed-forward residual",
     "return x + self.ffn(self.norm2(x))", "return self.ffn(self.norm2(x))"),
    ("DecoderBlock not causal",
     "mask = causal_mask(x.size(1)).to(x.device)", "mask = None"),
    ("EncoderBlock ignores its mask",
     "x = x + self.attn(self.norm1(x), mask=mask)", "x = x + self.attn(self.norm1(x))"),
    ("EncoderBlock is causal",
     "x = x + self.attn(self.norm1(x), mask=mask)",
     "x = x + self.attn(self.norm1(x), mask=causal_mask(x.size(1)))"),
    ("cross-attention takes keys and values from the decoder",
     "context=memory", "context=self.norm2(x)"),
    ("cross-attention normalises memory with norm2",
     "context=memory", "context=self.norm2(memory)"),
    ("CrossDecoderBlock's self-attention not causal",
     "x = x + self.self_attn(self.norm1(x), mask=causal_mask(x.size(1)).to(x.device))",
     "x = x + self.self_attn(self.norm1(x))"),
    ("CrossDecoderBlock ignores memory_mask",
     "context=memory, mask=memory_mask", "context=memory"),
    ("CrossDecoderBlock feeds the FFN norm2 instead of norm3",
     "return x + self.ffn(self.norm3(x))", "return x + self.ffn(self.norm2(x))"),
    ("make_norm always builds LayerNorm",
     'if norm == "layer":', 'if norm in ("layer", "rms"):'),
    ("make_ffn always builds FeedForward",
     'if ffn == "gelu":', 'if ffn in ("gelu", "swiglu"):'),
    ("RoPE never applied in the block",
     "if rope is None:", "if True:"),
    ("RoPE applied to the values too",
     "v = attn.split_heads(attn.v_proj(x))", "v = rope(attn.split_heads(attn.v_proj(x)), positions)"),
    ("RoPE in the block ignores the positions given",
     "    if positions is None:\n        positions = torch.arange(x.size(1), device=x.device)\n    elif",
     "    positions = torch.arange(x.size(1), device=x.device)\n    if"),
    ("LayerNorm variance as E[x^2] - E[x]^2 (cancels in float32)",
     LN_STATS, LN_STATS.replace("((x - mean) ** 2).mean(dim=-1, keepdim=True)",
                                "(x ** 2).mean(dim=-1, keepdim=True) - mean ** 2"),
     "not as mean(x**2) - mean**2"),
    ("feed-forward layers ignore their dropout",
     "self.dropout = nn.Dropout(dropout)", "self.dropout = nn.Dropout(0.0)", "dropout was not applied"),
    ("FeedForward drops the hidden activations instead of its output",
     "return self.dropout(self.down(gelu(self.up(x))))", "return self.down(self.dropout(gelu(self.up(x))))",
     "not to the hidden activations inside"),
    ("SwiGLU drops the hidden activations instead of its output",
     "return self.dropout(self.down(g * torch.sigmoid(g) * self.up(x)))",
     "return self.down(self.dropout(g * torch.sigmoid(g) * self.up(x)))",
     "not to the hidden activations inside"),
    ("FeedForward applies dropout in eval mode too",
     "return self.dropout(self.down(gelu(self.up(x))))",
     "return nn.functional.dropout(self.down(gelu(self.up(x))), self.dropout.p, training=True)",
     "dropout must do nothing in eval mode"),
    ("the RoPE path of self_attention skips the attention's dropout",
     "return attn.dropout(attn.out_proj(attn.merge_heads(y)))", "return attn.out_proj(attn.merge_heads(y))",
     "the RoPE path of self_attention must apply attn.dropout too"),
    ("blocks build their attention without dropout",
     "MultiHeadAttention(d_model, n_heads, dropout)", "MultiHeadAttention(d_model, n_heads)",
     "pass dropout to every attention"),
]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_public_tests_catch_the_mutant(tmp_path, mutant):
    description, old, new, *says = mutant
    assert_mutant_caught(tmp_path, "u05", "layers", description, old, new, says=says[0] if says else None)


# Bugs only the hidden tests are there to catch.
HIDDEN_MUTANTS = [
    ("make_norm falls back to LayerNorm for an unknown name",
     "raise ValueError(f\"norm must be 'layer' or 'rms', got {norm!r}\")", "return LayerNorm(dim)"),
]


@pytest.mark.parametrize("description, old, new", HIDDEN_MUTANTS, ids=[m[0] for m in HIDDEN_MUTANTS])
def test_hidden_tests_catch_the_mutant(tmp_path, description, old, new):
    assert_mutant_caught(tmp_path, "u05", "layers", description, old, new, tests="grader/hidden")

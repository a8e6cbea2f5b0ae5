"""Course tests must catch the bugs students really make.

Each mutant is the reference with one realistic bug planted by a text
substitution. The unit's public tests, run against it, must fail at least
once (and not merely with NotImplementedError). A substitution that no
longer applies fails loudly, so mutants cannot rot silently.
"""

import pytest

from kit import assert_mutant_caught

# (unit, module, description, old text, new text[, what the first failure's message must say])
MUTANTS = [
    ("u04", "attention", "softmax without max subtraction",
     "m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))", "m = torch.zeros_like(m)"),
    ("u04", "attention", "softmax normalised over the last dim whatever `dim` is",
     "e.sum(dim=dim, keepdim=True)", "e.sum(dim=-1, keepdim=True)"),
    ("u04", "attention", "fully masked rows give NaN",
     ".clamp_min(torch.finfo(e.dtype).tiny)", ""),
    ("u04", "attention", "causal mask excludes the diagonal",
     "torch.tril(torch.ones(T, T, dtype=torch.bool))",
     "torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-1)"),
    ("u04", "attention", "causal mask lets a query see one step ahead",
     "torch.tril(torch.ones(T, T, dtype=torch.bool))",
     "torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=1)"),
    ("u04", "attention", "missing 1/sqrt(d)",
     "/ math.sqrt(q.size(-1))", ""),
    ("u04", "attention", "scaled by 1/d instead of 1/sqrt(d)",
     "/ math.sqrt(q.size(-1))", "/ q.size(-1)"),
    ("u04", "attention", "mask convention inverted",
     "scores.masked_fill(~mask,", "scores.masked_fill(mask,"),
    ("u04", "attention", "softmax over the queries instead of the keys",
     "return softmax(scores, dim=-1) @ v", "return softmax(scores, dim=-2) @ v"),
    ("u04", "attention", "heads split without the transpose",
     "return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)",
     "return x.reshape(B, self.n_heads, T, self.head_dim)"),
    ("u04", "attention", "cross-attention takes keys from x",
     "k = self.split_heads(self.k_proj(source))", "k = self.split_heads(self.k_proj(x))"),
    ("u04", "attention", "output projection skipped",
     "return self.dropout(self.out_proj(self.merge_heads(y)))", "return self.dropout(self.merge_heads(y))",
     "then apply out_proj"),
    ("u04", "attention", "gradient cut by detach",
     "return softmax(scores, dim=-1) @ v", "return softmax(scores, dim=-1).detach() @ v"),
    ("u04", "attention", "dropout applied in eval mode too",
     "return self.dropout(self.out_proj(self.merge_heads(y)))",
     "return nn.functional.dropout(self.out_proj(self.merge_heads(y)), self.dropout.p, training=True)",
     "dropout must do nothing in eval mode"),
    ("u04", "attention", "dropout on the values before attention instead of on the output",
     "y = scaled_dot_product_attention(q, k, v, mask=mask)\n        return self.dropout(self.out_proj(",
     "y = scaled_dot_product_attention(q, k, self.dropout(v), mask=mask)\n        return (self.out_proj(",
     "dropout goes on the output"),
    ("u04", "attention", "dropout ignored: never applied",
     "return self.dropout(self.out_proj(self.merge_heads(y)))", "return self.out_proj(self.merge_heads(y))",
     "dropout was not applied"),
]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[f"{m[0]}-{m[2]}" for m in MUTANTS])
def test_public_tests_catch_the_mutant(tmp_path, mutant):
    unit, module, description, old, new, *says = mutant
    assert_mutant_caught(tmp_path, unit, module, description, old, new, says=says[0] if says else None)

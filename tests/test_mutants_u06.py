"""u06's tests catch the bugs students really make when they assemble models.

Each mutant is the reference with one realistic bug planted by a text
substitution (see tests/test_mutants.py for the idea). A substitution
replaces every occurrence of its text in the module named.
"""

import pytest

from kit import assert_mutant_caught

TIE = "self.lm_head.weight = self.tok_emb.weight"
LOSS = "F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))"
GPT_BLOCK = "DecoderBlock(c.d_model, c.n_head, c.d_ff, c.dropout, c.norm, c.ffn, rope)"

# (description, module, old text, new text[, what the first failure's message must say])
MUTANTS = [
    ("no causal mask in the decoder block (u05's bug, seen by u06)", "layers",
     "        mask = causal_mask(x.size(1)).to(x.device)\n", "        mask = None\n"),
    ("GPT built from encoder blocks: no causal mask", "model",
     GPT_BLOCK, "EncoderBlock(c.d_model, c.n_head, c.d_ff, c.dropout, c.norm, c.ffn)"),
    ("encoder-decoder's decoder is not causal (u05's bug, seen by u06)", "layers",
     "mask=causal_mask(x.size(1)).to(x.device))", "mask=None)"),
    ("encoder-decoder's encoder is causal", "model",
     "        for block in self.encoder:\n            x = block(x)",
     "        for block in self.encoder:\n"
     "            x = block(x, torch.ones(x.size(1), x.size(1), dtype=torch.bool).tril())"),
    ("weight tying missing", "model",
     f"        if c.tie_weights:\n            {TIE}\n", ""),
    ("weight tying inverted", "model",
     "if c.tie_weights:", "if not c.tie_weights:"),
    ("weight 'tying' by copying the values into a second Parameter", "model",
     TIE, "self.lm_head.weight = nn.Parameter(self.tok_emb.weight.detach().clone())"),
    ("init without the residual scaling", "model",
     "scale = std / math.sqrt(n_residual) if name.endswith(RESIDUAL_PROJECTIONS) else std", "scale = std"),
    ("residual projections scaled by 1/sqrt(n_layer), not 1/sqrt(2 n_layer)", "model",
     "gpt2_init_(self, 2 * c.n_layer)", "gpt2_init_(self, c.n_layer)"),
    ("GPT-2 init never applied (u03's N(0, 1) embedding stays)", "model",
     "gpt2_init_(self, 2 * c.n_layer)", "pass"),
    ("init leaves the biases as nn.Linear drew them", "model",
     "        elif name.endswith(\"bias\"):\n            nn.init.zeros_(p)\n", ""),
    ("learned positions ignored", "model",
     "x = x + self.pos_emb(torch.arange(T, device=idx.device))", "x = x"),
    ("RoPE never given to the blocks", "model",
     GPT_BLOCK, GPT_BLOCK.replace("rope)", "None)")),
    ("loss summed instead of averaged", "model",
     LOSS, LOSS[:-1] + ', reduction="sum")'),
    ("loss summed over positions, averaged over the batch", "model",
     LOSS, LOSS[:-1] + ', reduction="sum") / idx.size(0)'),
    ("loss ignores nothing (targets of -100 counted)", "model",
     LOSS, "F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1).clamp_min(0))"),
    ("logits computed from the stream before the final norm", "model",
     "logits = self.lm_head(self.norm_f(x))", "logits = self.lm_head(x)"),
    ("num_parameters counts a tied matrix twice", "model",
     "sum(p.numel() for p in self.parameters())", "sum(t.numel() for t in self.state_dict().values())"),
    ("encoder-decoder without positions", "model",
     "self.tok_emb(ids) * math.sqrt(self.d_model) + pe", "self.tok_emb(ids) * math.sqrt(self.d_model)"),
    ("config dropout ignored", "model", "c.dropout", "0.0", "drop (self.drop) the token + position vectors"),
    ("embedding dropout never applied", "model", "x = self.drop(x)", "x = x",
     "drop (self.drop) the token + position vectors"),
    ("GPT blocks built without the dropout", "model", GPT_BLOCK, GPT_BLOCK.replace("c.dropout", "0.0"),
     "give config.dropout to every block"),
    ("encoder-decoder embed skips its dropout", "model",
     "return self.drop(self.tok_emb(ids) * math.sqrt(self.d_model) + pe)",
     "return self.tok_emb(ids) * math.sqrt(self.d_model) + pe", "embed() drops its result"),
    ("GPT-2 init uniform with the right std instead of normal", "model",
     "nn.init.normal_(p, mean=0.0, std=scale)", "nn.init.uniform_(p, -scale * 3 ** 0.5, scale * 3 ** 0.5)",
     "not uniform"),
    ("encoder-decoder decoder residuals scaled like the encoder's", "model",
     "gpt2_init_(self.decoder, 3 * n_decoder_layers)", "gpt2_init_(self.decoder, 2 * n_decoder_layers)",
     "expected about"),
]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_public_tests_catch_the_mutant(tmp_path, mutant):
    description, module, old, new, *says = mutant
    assert_mutant_caught(tmp_path, "u06", module, description, old, new, says=says[0] if says else None)


# Bugs only the hidden tests are there to catch.
HIDDEN_MUTANTS = [
    ("encoder-decoder skips its encoder", "model",
     "return self.decode(tgt, self.encode(src))", "return self.decode(tgt, self.embed(src))"),
    ("encoder-decoder without the sqrt(d_model) scale", "model",
     "self.tok_emb(ids) * math.sqrt(self.d_model) + pe", "self.tok_emb(ids) + pe"),
    ("encoder-decoder without the encoder's final norm", "model",
     "        return self.enc_norm(x)", "        return x"),
    ("encoder-decoder head not tied", "model",
     f"        {TIE}\n        nn.init.normal_", "        nn.init.normal_"),
]


@pytest.mark.parametrize("description, module, old, new", HIDDEN_MUTANTS, ids=[m[0] for m in HIDDEN_MUTANTS])
def test_hidden_tests_catch_the_mutant(tmp_path, description, module, old, new):
    assert_mutant_caught(tmp_path, "u06", module, description, old, new, tests="grader/hidden")

"""Hidden tests for unit u06, models: never shipped to students.

Stronger than the public tests: a checkpoint of the reference, for every
combination of positions, norm, feed-forward and tying, must load into the
student's model and give the same logits, loss and gradients; the same for
the encoder-decoder; causality at random lengths and cut points; parameter
counts of random shapes; initialisation of LLaMA-style and encoder-decoder
models; dropout switched by train()/eval(); training on one batch.
"""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from grader.testing import Mismatch, assert_close, assert_equal

pytestmark = pytest.mark.u06

BASE = dict(vocab_size=40, block_size=12, n_layer=2, n_head=2, d_model=16, d_ff=24, dropout=0.0,
            positions="learned", norm="layer", ffn="gelu", tie_weights=True)
S2S = dict(vocab_size=23, d_model=16, n_head=2, n_encoder_layers=2, n_decoder_layers=1, d_ff=24)
COMBOS = list(itertools.product(["learned", "rope"], ["layer", "rms"], ["gelu", "swiglu"]))


# ---------------------------------------------------------------- probes

def redraw_(model, seed):
    """Every parameter drawn again, in name order: matrices ~ N(0, 1/fan_in),
    gains 1 + 0.1 N(0, 1), biases 0.1 N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    seen = set()
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(remove_duplicate=False)):
            if id(p) in seen:
                continue
            seen.add(id(p))
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)
            if p.dim() >= 2:
                p.copy_(noise * p.shape[-1] ** -0.5)
            elif name.endswith("bias"):
                p.copy_(noise * 0.1)
            else:
                p.copy_(1.0 + noise * 0.1)
    return model


def new_model(pkg, kind, args, seed):
    torch.manual_seed(seed)
    if kind == "gpt":
        return pkg.model.GPT(pkg.model.GPTConfig(**args))
    return pkg.model.Seq2SeqTransformer(**args)


def logits_and_loss(model, kind, inputs, targets):
    """GPT: model(idx, targets); encoder-decoder: model(src, tgt) and the mean cross-entropy."""
    if kind == "gpt":
        return model(inputs[0], targets)
    logits = model(*inputs)
    return logits, F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def checkpoint_probe(pkg, kind, args, seed):
    """A model built with `seed` and given strong random weights: its state_dict."""
    model = redraw_(new_model(pkg, kind, args, seed), seed)
    return {k: v.clone() for k, v in model.state_dict().items()}


def loaded_run_probe(pkg, kind, args, state, inputs, targets, dtype_name):
    """Load `state` (strictly), run forward and backward; return outputs and gradients."""
    dtype = getattr(torch, dtype_name)
    model = new_model(pkg, kind, args, 0).to(dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()})
    model.eval()
    logits, loss = logits_and_loss(model, kind, inputs, targets)
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters(remove_duplicate=False)}
    return {"logits": logits.detach(), "loss": loss.detach(), "grads": grads}


def s2s_parts_probe(pkg, args, state, src, tgt):
    model = new_model(pkg, "s2s", args, 0)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        memory = model.encode(src)
        return memory, model.decode(tgt, memory), model(src, tgt)


def logits_pair_probe(pkg, kind, args, seed, inputs_a, inputs_b):
    model = redraw_(new_model(pkg, kind, args, seed), seed).eval()
    with torch.no_grad():
        out_a, out_b = model(*inputs_a), model(*inputs_b)
    if kind == "gpt":
        out_a, out_b = out_a[0], out_b[0]
    return out_a, out_b


def num_parameters_probe(pkg, cfg):
    return int(new_model(pkg, "gpt", cfg, 0).num_parameters())


def fresh_state_probe(pkg, kind, args, seed):
    return {k: v.clone() for k, v in new_model(pkg, kind, args, seed).state_dict().items()}


def init_loss_probe(pkg, cfg, seed, idx, targets):
    with torch.no_grad():
        return float(new_model(pkg, "gpt", cfg, seed).eval()(idx, targets)[1])


def dropout_probe(pkg, cfg, seed, idx):
    model = new_model(pkg, "gpt", cfg, seed)
    with torch.no_grad():
        model.train()
        train = [model(idx)[0] for _ in range(2)]
        model.eval()
        evaluation = [model(idx)[0] for _ in range(2)]
    return train, evaluation


def overfit_probe(pkg, kind, args, seed, inputs, targets, steps, lr):
    model = new_model(pkg, kind, args, seed).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        _, loss = logits_and_loss(model, kind, inputs, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def long_input_probe(pkg, cfg, idx):
    model = new_model(pkg, "gpt", cfg, 0)
    try:
        model(idx)
    except (ValueError, IndexError):
        return "error"
    return "no error"


# ---------------------------------------------------------------- helpers

def randint(rng, lo, hi):
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=rng))


def check(ok, summary, hint=None):
    if not ok:
        raise Mismatch(summary, hint=hint)


def gpt_cfg(**changes):
    return {**BASE, **changes}


def describe(cfg):
    return ", ".join(f"{k}={cfg[k]!r}" for k in ("positions", "norm", "ffn", "tie_weights"))


def expected_num_parameters(cfg):
    V, d, f = cfg["vocab_size"], cfg["d_model"], cfg["d_ff"]
    norm = 2 * d if cfg["norm"] == "layer" else d
    ffn = 2 * d * f + f + d if cfg["ffn"] == "gelu" else 3 * d * f
    pos = cfg["block_size"] * d if cfg["positions"] == "learned" else 0
    head = 0 if cfg["tie_weights"] else V * d
    return V * d + pos + cfg["n_layer"] * (4 * d * d + 2 * norm + ffn) + norm + head


def check_init_std(state, expected_std, band=1.25):
    """Every matrix's std about 0 lies within a factor `band` of expected_std(name).

    A matrix here has >= 4096 entries, so the measured std is within about
    1.1% (one standard deviation) of the true one: a band of 1.1 is 9 of those.
    """
    for name, t in sorted(state.items()):
        if t.dim() < 2:
            continue
        want = expected_std(name)
        got = float(t.double().pow(2).mean().sqrt())
        check(want / band < got < want * band, f"{name} {list(t.shape)}: initial std is off",
              hint="GPT-2 initialisation: N(0, 0.02^2), residual projections scaled by 1/sqrt(n_residual)")


def compare_runs(got, want, what):
    # float64, but RoPE and sinusoid tables may be float32 numbers: errors of
    # ~1e-7 are allowed; real mistakes are far larger.
    for key in ("logits", "loss", "grads"):
        assert_close(got[key], want[key], atol=1e-6, rtol=1e-5, what=f"{key}, {what}")


# ---------------------------------------------------------------- checkpoints

@pytest.mark.weight(2)
@pytest.mark.parametrize("positions, norm, ffn", COMBOS, ids=["-".join(c) for c in COMBOS])
def test_reference_checkpoint_gives_the_same_logits(student, reference, rng, positions, norm, ffn):
    tie = positions == "rope" or norm == "rms"
    cfg = gpt_cfg(positions=positions, norm=norm, ffn=ffn, tie_weights=tie,
                  n_layer=randint(rng, 1, 3), block_size=randint(rng, 4, 12))
    state = reference.run(checkpoint_probe, "gpt", cfg, randint(rng, 0, 10**6))
    B, T = randint(rng, 1, 3), randint(rng, 1, cfg["block_size"])
    idx = torch.randint(0, cfg["vocab_size"], (B, T), generator=rng)
    targets = torch.randint(0, cfg["vocab_size"], (B, T), generator=rng)
    if B * T > 1:
        targets[0, 0] = -100  # skipped by the loss
    want = reference.run(loaded_run_probe, "gpt", cfg, state, [idx], targets, "float32")
    got = student.run(loaded_run_probe, "gpt", cfg, state, [idx], targets, "float32")
    assert_close(got["logits"], want["logits"], atol=1e-4, rtol=1e-4,
                 what=f"logits from the reference checkpoint ({describe(cfg)}), idx {(B, T)}")
    assert_close(got["loss"], want["loss"], atol=1e-5, rtol=1e-5, what="loss from the reference checkpoint")


@pytest.mark.parametrize("positions, norm, ffn, tie", [("learned", "layer", "gelu", True),
                                                       ("rope", "rms", "swiglu", False),
                                                       ("learned", "rms", "gelu", False)])
def test_reference_checkpoint_gives_the_same_gradients(student, reference, rng, positions, norm, ffn, tie):
    cfg = gpt_cfg(positions=positions, norm=norm, ffn=ffn, tie_weights=tie)
    state = reference.run(checkpoint_probe, "gpt", cfg, randint(rng, 0, 10**6))
    idx = torch.randint(0, cfg["vocab_size"], (2, 9), generator=rng)
    targets = torch.randint(0, cfg["vocab_size"], (2, 9), generator=rng)
    want = reference.run(loaded_run_probe, "gpt", cfg, state, [idx], targets, "float64")
    got = student.run(loaded_run_probe, "gpt", cfg, state, [idx], targets, "float64")
    compare_runs(got, want, f"float64, {describe(cfg)}")


@pytest.mark.weight(2)
@pytest.mark.parametrize("case", range(3))
def test_seq2seq_reference_checkpoint(student, reference, rng, case):
    args = {**S2S, "n_encoder_layers": randint(rng, 1, 2), "n_decoder_layers": randint(rng, 1, 2)}
    state = reference.run(checkpoint_probe, "s2s", args, randint(rng, 0, 10**6))
    B, S, T = randint(rng, 1, 3), randint(rng, 1, 9), randint(rng, 1, 9)
    src = torch.randint(0, args["vocab_size"], (B, S), generator=rng)
    tgt = torch.randint(0, args["vocab_size"], (B, T), generator=rng)
    targets = torch.randint(0, args["vocab_size"], (B, T), generator=rng)
    want = reference.run(loaded_run_probe, "s2s", args, state, [src, tgt], targets, "float64")
    got = student.run(loaded_run_probe, "s2s", args, state, [src, tgt], targets, "float64")
    compare_runs(got, want, f"encoder-decoder, src {(B, S)}, tgt {(B, T)}")


def test_seq2seq_encode_and_decode(student, reference, rng):
    state = reference.run(checkpoint_probe, "s2s", S2S, 11)
    src = torch.randint(0, S2S["vocab_size"], (2, 6), generator=rng)
    tgt = torch.randint(0, S2S["vocab_size"], (2, 4), generator=rng)
    memory, decoded, full = student.run(s2s_parts_probe, S2S, state, src, tgt)
    want_memory, want_decoded, _ = reference.run(s2s_parts_probe, S2S, state, src, tgt)
    assert_close(memory, want_memory, atol=1e-5, rtol=1e-4, what="encode(src): the encoder's output")
    assert_close(decoded, want_decoded, atol=1e-5, rtol=1e-4, what="decode(tgt, encode(src))")
    assert_close(full, decoded, atol=1e-6, rtol=1e-5, what="forward(src, tgt) vs decode(tgt, encode(src))")


# ---------------------------------------------------------------- causality and positions

@pytest.mark.parametrize("case", range(4))
def test_gpt_causality_at_random_lengths(student, rng, case):
    positions, norm, ffn = COMBOS[[0, 7, 2, 5][case]]
    cfg = gpt_cfg(positions=positions, norm=norm, ffn=ffn, block_size=16)
    T = randint(rng, 2, 16)
    cut = randint(rng, 1, T - 1)
    idx_a = torch.randint(0, cfg["vocab_size"], (2, T), generator=rng)
    idx_b = idx_a.clone()
    idx_b[:, cut:] = (idx_a[:, cut:] + torch.randint(1, cfg["vocab_size"], (2, T - cut), generator=rng)) % cfg["vocab_size"]
    a, b = student.run(logits_pair_probe, "gpt", cfg, randint(rng, 0, 999), [idx_a], [idx_b])
    assert_close(b[:, :cut], a[:, :cut], atol=1e-5, rtol=1e-4,
                 what=f"logits before position {cut} of {T} after changing later tokens ({describe(cfg)})")
    check(float((a[:, cut] - b[:, cut]).abs().max()) > 1e-4,
          f"logits at position {cut} ignore the token there")


def test_seq2seq_causality_at_random_lengths(student, rng):
    S, T = randint(rng, 2, 9), randint(rng, 2, 9)
    cut = randint(rng, 1, T - 1)
    src = torch.randint(0, S2S["vocab_size"], (2, S), generator=rng)
    tgt = torch.randint(0, S2S["vocab_size"], (2, T), generator=rng)
    tgt_b = tgt.clone()
    tgt_b[:, cut:] = (tgt[:, cut:] + 1) % S2S["vocab_size"]
    a, b = student.run(logits_pair_probe, "s2s", S2S, 5, [src, tgt], [src, tgt_b])
    assert_close(b[:, :cut], a[:, :cut], atol=1e-5, rtol=1e-4,
                 what=f"decoder logits before target position {cut} of {T} after changing later targets")
    for j in range(S):  # every source position reaches every target position
        src_b = src.clone()
        src_b[:, j] = (src[:, j] + 1) % S2S["vocab_size"]
        a, c = student.run(logits_pair_probe, "s2s", S2S, 5, [src, tgt], [src_b, tgt])
        check(float((a[:, 0] - c[:, 0]).abs().max()) > 1e-4,
              f"the first target position ignores source position {j} of {S}")


def test_long_input_is_refused(student):
    cfg = gpt_cfg(block_size=8)
    got = student.run(long_input_probe, cfg, torch.zeros(1, 9, dtype=torch.long))
    assert_equal(got, "error", what="GPT.forward on a sequence longer than block_size raises an error")


# ---------------------------------------------------------------- parameters and initialisation

@pytest.mark.parametrize("case", range(6))
def test_num_parameters_random_shapes(student, rng, case):
    n_head = randint(rng, 1, 4)
    cfg = gpt_cfg(vocab_size=randint(rng, 5, 300), block_size=randint(rng, 1, 50), n_layer=randint(rng, 1, 5),
                  n_head=n_head, d_model=2 * n_head * randint(rng, 1, 8), d_ff=randint(rng, 1, 100),
                  positions=COMBOS[case][0], norm=COMBOS[case][1], ffn=COMBOS[case][2],
                  tie_weights=bool(case % 2))
    got = student.run(num_parameters_probe, cfg)
    assert_equal(got, expected_num_parameters(cfg), what=f"num_parameters() ({describe(cfg)})")


def test_llama_style_initialisation(student):
    cfg = gpt_cfg(vocab_size=256, block_size=64, n_layer=6, n_head=4, d_model=64, d_ff=192,
                  positions="rope", norm="rms", ffn="swiglu", tie_weights=False)
    state = student.run(fresh_state_probe, "gpt", cfg, 3)
    residual = 0.02 / math.sqrt(12)
    check_init_std(state, lambda n: residual if n.endswith(("attn.out_proj.weight", "ffn.down.weight")) else 0.02)
    for name, t in state.items():
        if t.dim() == 1:
            assert_close(t, torch.ones_like(t), atol=0, rtol=0, what=f"{name} at initialisation")


def test_seq2seq_initialisation(student):
    args = dict(vocab_size=256, d_model=64, n_head=4, n_encoder_layers=3, n_decoder_layers=2, d_ff=256)
    state = student.run(fresh_state_probe, "s2s", args, 4)

    def expected(name):
        if name.endswith(("out_proj.weight", "ffn.down.weight")):
            return 0.02 / math.sqrt(2 * 3 if name.startswith("encoder.") else 3 * 2)
        return 0.02

    check_init_std(state, expected, band=1.1)  # 1/sqrt(3 n) vs 1/sqrt(2 n) differ by 1.22
    assert_close(state["lm_head.weight"], state["tok_emb.weight"], atol=0, rtol=0,
                 what="the encoder-decoder's lm_head.weight vs tok_emb.weight (tied)")


def test_loss_at_initialisation_llama_style(student, rng):
    cfg = gpt_cfg(vocab_size=512, block_size=32, n_layer=3, n_head=4, d_model=64, d_ff=128,
                  positions="rope", norm="rms", ffn="swiglu")
    idx = torch.randint(0, 512, (8, 32), generator=rng)
    targets = torch.randint(0, 512, (8, 32), generator=rng)
    got = student.run(init_loss_probe, cfg, 5, idx, targets)
    check(abs(got - math.log(512)) < 0.15, "the loss at initialisation is not close to ln(vocab_size)")


# ---------------------------------------------------------------- training behaviour

def test_dropout_follows_train_and_eval(student, rng):
    cfg = gpt_cfg(dropout=0.5)
    idx = torch.randint(0, cfg["vocab_size"], (2, 8), generator=rng)
    train, evaluation = student.run(dropout_probe, cfg, 6, idx)
    check(float((train[0] - train[1]).abs().max()) > 1e-6,
          "with dropout=0.5 in train() mode, two forward passes gave the same logits",
          hint="pass config.dropout to nn.Dropout and the blocks")
    assert_close(evaluation[1], evaluation[0], atol=0, rtol=0, what="two forward passes in eval() mode")


@pytest.mark.parametrize("kind", ["gpt", "s2s"])
def test_overfits_one_batch_llama_style_and_seq2seq(student, rng, kind):
    if kind == "gpt":
        args = gpt_cfg(positions="rope", norm="rms", ffn="swiglu", block_size=16, d_model=32, n_head=4, d_ff=64)
        inputs = [torch.randint(0, args["vocab_size"], (2, 16), generator=rng)]
        targets = torch.randint(0, args["vocab_size"], (2, 16), generator=rng)
    else:
        args = {**S2S, "d_model": 32, "n_head": 4, "d_ff": 64}
        inputs = [torch.randint(0, args["vocab_size"], (2, 8), generator=rng),
                  torch.randint(0, args["vocab_size"], (2, 8), generator=rng)]
        targets = torch.randint(0, args["vocab_size"], (2, 8), generator=rng)
    losses = student.run(overfit_probe, kind, args, 7, inputs, targets, 60, 1e-2)
    check(len(losses) == 60 and all(math.isfinite(x) for x in losses), "training losses are not finite")
    check(losses[-1] < 0.1 * losses[0], f"{kind}: 60 AdamW steps on one batch did not cut the loss tenfold")

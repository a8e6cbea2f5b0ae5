"""Public tests for unit u07, training.

Each test builds inputs here, runs a probe against your package with
`student.run`, and compares with an oracle computed here: torch's own
F.cross_entropy, torch.optim.AdamW, clip_grad_norm_, CosineAnnealingLR and
GradScaler (all of which your module may not use), or a loss the test
computes itself from the weights your code returns. Run them with
`llmfs check u07` or `pytest exercises/tests -m u07`.
"""

import io
import math
import os
import random
import tempfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.testing import Mismatch, assert_close, assert_equal

pytestmark = pytest.mark.u07

HISTORY_KEYS = ["iteration", "lr", "tokens_per_s", "train_loss", "val_loss"]


# ---------------------------------------------------------------- models the probes train

def bigram(V, d, dropout=0.0):
    """A tiny language model: token -> vector -> (dropout) -> logits over the next token."""
    return torch.nn.Sequential(torch.nn.Embedding(V, d), torch.nn.Dropout(dropout), torch.nn.Linear(d, V))


def bigram_from(state, dropout=0.0):
    V, d = state["0.weight"].shape
    model = bigram(V, d, dropout)
    model.load_state_dict(state)
    return model


def fresh_state(V, d, seed):
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in bigram(V, d).state_dict().items()}


# ---------------------------------------------------------------- probes

def ce_probe(pkg, logits, targets, ignore_index):
    return pkg.training.cross_entropy(logits, targets, ignore_index=ignore_index).detach()


def ce_grad_probe(pkg, logits, targets, ignore_index):
    z = logits.clone().requires_grad_(True)
    loss = pkg.training.cross_entropy(z, targets, ignore_index=ignore_index)
    loss.backward()
    return loss.detach(), z.grad


def adamw_probe(pkg, params, grads, groups, options):
    """AdamW over `params` split into `groups` [[indices, group options], ...];
    grads[step][i] is parameter i's gradient at that step (None: no gradient).
    Returns the parameters after every step."""
    ps = [torch.nn.Parameter(p.clone()) for p in params]
    opt = pkg.training.AdamW([dict(params=[ps[i] for i in idx], **o) for idx, o in groups], **options)
    after = []
    for step in grads:
        for p, g in zip(ps, step):
            p.grad = None if g is None else g.clone()
        opt.step()
        after.append([p.detach().clone() for p in ps])
    return after


def adamw_resume_probe(pkg, params, grads, options, k):
    """k steps, state_dict through torch.save/torch.load(weights_only=True), a new
    AdamW on copies of the parameters, the remaining steps."""
    ps = [torch.nn.Parameter(p.clone()) for p in params]
    opt = pkg.training.AdamW(ps, **options)
    for i, step in enumerate(grads):
        if i == k:
            buf = io.BytesIO()
            torch.save(opt.state_dict(), buf)
            buf.seek(0)
            ps = [torch.nn.Parameter(p.detach().clone()) for p in ps]
            opt = pkg.training.AdamW(ps, **options)
            opt.load_state_dict(torch.load(buf, weights_only=True))
        for p, g in zip(ps, step):
            p.grad = g.clone()
        opt.step()
    return [p.detach().clone() for p in ps]


def lr_probe(pkg, its, max_lr, min_lr, warmup_iters, cosine_iters):
    return [pkg.training.lr_at(it, max_lr, min_lr, warmup_iters, cosine_iters) for it in its]


def clip_probe(pkg, shapes, grads, max_norm):
    ps = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in shapes]
    for p, g in zip(ps, grads):
        p.grad = None if g is None else g.clone()
    norm = pkg.training.clip_grad_norm(iter(ps), max_norm)
    return float(norm), [p.grad for p in ps]


def batches_probe(pkg, tokens, batch_size, block_size, seeds, global_seeds):
    """One batch per (generator seed, global torch seed) pair."""
    out = []
    for s, gs in zip(seeds, global_seeds):
        torch.manual_seed(gs)
        x, y = pkg.training.get_batch(tokens, batch_size, block_size, torch.Generator().manual_seed(s))
        out.append([x, y])
    return out


def many_batches_probe(pkg, tokens, batch_size, block_size, n, seed):
    g = torch.Generator().manual_seed(seed)
    return [list(pkg.training.get_batch(tokens, batch_size, block_size, g)) for _ in range(n)]


def scaler_probe(pkg, state, xs, ys, init_scale, growth_interval, lr):
    """A linear regression stepped by SGD through your LossScaler; records every step."""
    model = torch.nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
    model.load_state_dict(state)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    scaler = pkg.training.LossScaler(init_scale=init_scale, growth_interval=growth_interval)
    records = []
    for x, y in zip(xs, ys):
        loss = ((model(x) - y) ** 2).mean()
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        scale = scaler.get_scale()
        stepped = scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        records.append({"scale": scale, "stepped": bool(stepped),
                        "params": {k: v.clone() for k, v in model.state_dict().items()}})
    return records


def train_step_probe(pkg, state, xs, ys, precision, init_scale, max_norm, lr):
    """Your train_step with SGD on a bigram model; init_scale None means no scaler."""
    model = bigram_from(state)
    dtypes = []
    model[2].register_forward_hook(lambda module, inputs, output: dtypes.append(str(output.dtype)))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    scaler = None if init_scale is None else pkg.training.LossScaler(init_scale=init_scale)
    losses, zeroed = [], []
    for x, y in zip(xs, ys):
        losses.append(pkg.training.train_step(model, x, y, opt, precision=precision, scaler=scaler,
                                              max_norm=max_norm))
        zeroed.append(all(p.grad is None or not bool(p.grad.any()) for p in model.parameters()))
    return losses, zeroed, {k: v.clone() for k, v in model.state_dict().items()}, dtypes


def sgd_steps(pkg, model, opt, gen, tokens, n, losses):
    """n steps of SGD on batches from your get_batch; dropout draws from torch's global RNG."""
    for _ in range(n):
        x, y = pkg.training.get_batch(tokens, 4, 6, gen)
        loss = ((model(x) - F.one_hot(y, model[2].out_features)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))


def resume_probe(pkg, state, other_state, tokens, k, n, split):
    """Train n steps; with split, save after k, scramble every RNG, load into fresh objects, go on."""
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    model = bigram_from(state, dropout=0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(2)
    losses, raw, iteration = [], b"", k
    sgd_steps(pkg, model, opt, gen, tokens, k, losses)
    if split:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ckpt.pt")
            pkg.training.save_checkpoint(path, model, opt, k, generator=gen.get_state())
            with open(path, "rb") as f:
                raw = f.read()
            torch.manual_seed(99)
            random.seed(99)
            np.random.seed(99)
            model = bigram_from(other_state, dropout=0.5)
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            ckpt = pkg.training.load_checkpoint(path, model, opt)
            gen = torch.Generator()
            gen.set_state(ckpt["generator"])
            iteration = ckpt["iteration"]
    sgd_steps(pkg, model, opt, gen, tokens, n - k, losses)
    return {"losses": losses, "params": {name: v.clone() for name, v in model.state_dict().items()},
            "next_random": [random.random(), float(np.random.rand()), float(torch.rand(()))],
            "file": raw, "iteration": iteration}


def estimate_loss_probe(pkg, state, dropout, tokens, block_size, batch_sizes, n_windows):
    """estimate_loss with each batch size, on a model left in training mode."""
    model = bigram_from(state, dropout)
    model.train()
    values = [pkg.training.estimate_loss(model, tokens, block_size, b, n_windows) for b in batch_sizes]
    return values, model.training


def train_probe(pkg, state, dropout, train_tokens, val_tokens, config, runs):
    """Your train(); `runs` lists the max_iters of successive calls (resuming after the first).
    A max_iters < 0 means: stop with a KeyboardInterrupt after -max_iters steps."""
    torch.manual_seed(0)
    model = bigram_from(state, dropout)
    histories, interrupted = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, max_iters in enumerate(runs):
            cfg = dict(config, out_dir=tmp, resume=i > 0, max_iters=abs(max_iters), progress=False)
            callbacks = []
            if max_iters < 0:
                cfg["max_iters"] = config["max_iters"]
                callbacks = [stop_after(-max_iters)]
            try:
                histories.append(pkg.training.train(model, train_tokens, val_tokens,
                                                    pkg.training.TrainConfig(**cfg), callbacks=callbacks))
                interrupted.append(False)
            except KeyboardInterrupt:
                histories.append([])
                interrupted.append(True)
            if i + 1 < len(runs):
                model = bigram_from(state, dropout)  # a fresh model: only the checkpoint carries on
        path = os.path.join(tmp, "ckpt.pt")
        with open(path, "rb") as f:
            raw = f.read()
    return {"histories": histories, "interrupted": interrupted, "file": raw,
            "params": {k: v.clone() for k, v in model.state_dict().items()}}


def stop_after(n):
    """A callback that presses Ctrl-C once `n` steps are done."""
    def callback(record, model):
        if record["iteration"] + 1 == n:
            raise KeyboardInterrupt
    return callback


# ---------------------------------------------------------------- helpers (the judge's side)

def torch_adamw(params, grads, groups, options):
    """The oracle: the same run with torch.optim.AdamW."""
    ps = [torch.nn.Parameter(p.clone()) for p in params]
    opt = torch.optim.AdamW([dict(params=[ps[i] for i in idx], **o) for idx, o in groups], foreach=False,
                            **options)
    after = []
    for step in grads:
        for p, g in zip(ps, step):
            p.grad = None if g is None else g.clone()
        opt.step()
        after.append([p.detach().clone() for p in ps])
    return after


def torch_schedule(its, max_lr, min_lr, warmup_iters, cosine_iters):
    """The oracle: a straight line up, torch's CosineAnnealingLR down, then min_lr."""
    ramp = torch.linspace(0, max_lr, warmup_iters + 1, dtype=torch.float64).tolist()
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cosine_iters - warmup_iters, eta_min=min_lr)
    down = [opt.param_groups[0]["lr"]]
    for _ in range(cosine_iters - warmup_iters):
        opt.step()
        cosine.step()
        down.append(opt.param_groups[0]["lr"])
    return [ramp[it] if it < warmup_iters else down[it - warmup_iters] if it <= cosine_iters else min_lr
            for it in its]


def markov_tokens(V, n, seed):
    """n tokens of a chain where each token is followed by one of two others, at random:
    the best possible loss is ln 2, far below ln V."""
    g = torch.Generator().manual_seed(seed)
    coin = torch.randint(0, 2, (n,), generator=g)
    out = [0]
    for i in range(1, n):
        a = out[-1]
        out.append((3 * a + 1) % V if coin[i] else (5 * a + 2) % V)
    return torch.tensor(out)


def loss_on_all_windows(state, tokens, T):
    """The judge's own validation loss: F.cross_entropy over every window of `tokens`."""
    model = bigram_from(state).eval()
    starts = range(len(tokens) - T)
    x = torch.stack([tokens[s:s + T] for s in starts])
    y = torch.stack([tokens[s + 1:s + T + 1] for s in starts])
    with torch.no_grad():
        logits = model(x)
    return float(F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1)))


def find_window(tokens, x_row, y_row):
    """A start s with tokens[s:s+T] == x_row and tokens[s+1:s+T+1] == y_row, or None."""
    T = len(x_row)
    for s in range(len(tokens) - T):
        if torch.equal(tokens[s:s + T], x_row) and torch.equal(tokens[s + 1:s + T + 1], y_row):
            return s
    return None


def flat_ce(logits, targets, ignore_index=-100):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=ignore_index)


TRAIN_CONFIG = dict(batch_size=8, block_size=8, max_iters=120, max_lr=0.05, min_lr=0.005, warmup_iters=10,
                    cosine_iters=120, weight_decay=0.1, betas=(0.9, 0.95), max_norm=1.0, precision="fp32",
                    eval_interval=40, eval_iters=1000, checkpoint_interval=1000, seed=3)


# ---------------------------------------------------------------- cross-entropy

def test_cross_entropy_matches_torch_on_batched_sequences(student, rng):
    logits = torch.randn(3, 5, 11, generator=rng) * 3
    targets = torch.randint(0, 11, (3, 5), generator=rng)
    got = student.run(ce_probe, logits, targets, -100)
    assert_close(got, flat_ce(logits, targets), atol=1e-5, rtol=1e-5,
                 what="cross_entropy(logits (3, 5, 11), targets (3, 5))",
                 hint="the classes are the LAST axis: logsumexp over dim=-1, one target per (b, t)")


def test_cross_entropy_skips_ignored_targets(student, rng):
    logits = torch.randn(4, 6, 7, generator=rng)
    targets = torch.randint(0, 7, (4, 6), generator=rng)
    targets[0, :4] = -100
    targets[2, 1] = -100
    got = student.run(ce_probe, logits, targets, -100)
    assert_close(got, flat_ce(logits, targets), atol=1e-5, rtol=1e-5,
                 what="cross_entropy with 5 of 24 targets equal to -100",
                 hint="average over the targets that are kept only, not over all B*T positions")


def test_cross_entropy_uses_the_given_ignore_index(student, rng):
    logits = torch.randn(10, 5, generator=rng)
    targets = torch.tensor([0, 1, 2, 3, 4, 3, 3, 0, 1, 2])
    got = student.run(ce_probe, logits, targets, 3)
    assert_close(got, flat_ce(logits, targets, ignore_index=3), atol=1e-5, rtol=1e-5,
                 what="cross_entropy(..., ignore_index=3)", hint="skip targets equal to ignore_index, whatever it is")


def test_cross_entropy_does_not_overflow(student, rng):
    logits = torch.randn(2, 4, 9, generator=rng, dtype=torch.float64) * 1e4
    logits[0, 0, 3] = -math.inf
    logits[1, 2, :5] = -math.inf
    targets = torch.randint(5, 9, (2, 4), generator=rng)
    got = student.run(ce_probe, logits, targets, -100)
    assert_close(got, flat_ce(logits, targets), atol=1e-9, rtol=1e-9,
                 what="cross_entropy of logits of size 1e4 with some -inf entries (float64)",
                 hint="subtract the row maximum before exp(): exp(1e4) is inf even in float64")


def test_cross_entropy_gradient_matches_torch(student, rng):
    logits = torch.randn(2, 3, 6, generator=rng, dtype=torch.float64)
    targets = torch.randint(0, 6, (2, 3), generator=rng)
    targets[1, 0] = -100
    loss, grad = student.run(ce_grad_probe, logits, targets, -100)
    z = logits.clone().requires_grad_(True)
    flat_ce(z, targets).backward()
    assert_close(grad, z.grad, atol=1e-10, rtol=1e-8, what="d cross_entropy / d logits (float64, one ignored)",
                 hint="an ignored position gets zero gradient; build the loss from differentiable torch ops")


# ---------------------------------------------------------------- AdamW

def random_params(rng, shapes, dtype=torch.float64):
    return [torch.randn(s, generator=rng, dtype=dtype) for s in shapes]


def random_grads(rng, shapes, steps, scales):
    return [[torch.randn(s, generator=rng, dtype=torch.float64) * c for s, c in zip(shapes, scales)]
            for _ in range(steps)]


def test_adamw_with_defaults_matches_torch(student, rng):
    shapes = [(4, 3), (5,), (2, 2, 2)]
    params = random_params(rng, shapes)
    grads = random_grads(rng, shapes, 6, [1.0, 1e3, 0.1])
    got = student.run(adamw_probe, params, grads, [[[0, 1, 2], {}]], {})
    assert_close(got, torch_adamw(params, grads, [[[0, 1, 2], {}]], {}), atol=1e-12, rtol=1e-10,
                 what="parameters after each of 6 AdamW steps, default hyperparameters (float64)",
                 hint="defaults lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01; bias-correct m AND v "
                      "with the step count t = 1, 2, ...")


def test_adamw_adds_eps_outside_the_square_root(student, rng):
    shapes = [(6,), (3, 3)]
    params = random_params(rng, shapes)
    grads = random_grads(rng, shapes, 4, [1e-6, 1e-5])
    options = {"lr": 1e-2, "weight_decay": 0.0}
    got = student.run(adamw_probe, params, grads, [[[0, 1], {}]], options)
    assert_close(got, torch_adamw(params, grads, [[[0, 1], {}]], options), atol=1e-12, rtol=1e-10,
                 what="AdamW with gradients of size 1e-6 (float64)",
                 hint="the denominator is sqrt(v_hat) + eps, not sqrt(v_hat + eps): they differ when v is tiny")


def test_adamw_decays_before_the_update_and_times_lr(student, rng):
    shapes = [(5, 4)]
    params = random_params(rng, shapes)
    grads = random_grads(rng, shapes, 5, [1.0])
    options = {"lr": 0.1, "weight_decay": 0.5, "betas": (0.8, 0.9)}
    got = student.run(adamw_probe, params, grads, [[[0], {}]], options)
    assert_close(got, torch_adamw(params, grads, [[[0], {}]], options), atol=1e-12, rtol=1e-10,
                 what="AdamW with lr=0.1, weight_decay=0.5 (float64)",
                 hint="decoupled decay: p *= 1 - lr * weight_decay, before the Adam update, and never added to "
                      "the gradient (that would be Adam + L2)")


def test_adamw_leaves_parameters_without_gradient_alone(student, rng):
    shapes = [(3, 3), (4,), (2, 5)]
    params = random_params(rng, shapes)
    grads = random_grads(rng, shapes, 5, [1.0, 1.0, 1.0])
    for step in grads:
        step[1] = None  # parameter 1 never has a gradient
    grads[2][2] = None  # parameter 2 misses one step
    options = {"lr": 0.05, "weight_decay": 0.2}
    got = student.run(adamw_probe, params, grads, [[[0, 1, 2], {}]], options)
    assert_close([after[1] for after in got], [params[1]] * 5, atol=0, rtol=0,
                 what="a parameter whose .grad is None at every step",
                 hint="skip parameters with p.grad is None: no decay, no state")
    assert_close(got, torch_adamw(params, grads, [[[0, 1, 2], {}]], options), atol=1e-12, rtol=1e-10,
                 what="AdamW where one parameter has no gradient at step 3 (float64)",
                 hint="each parameter keeps its own step count: it only counts the steps it took part in")


def test_adamw_param_groups_have_their_own_settings_and_state(student, rng):
    shapes = [(3, 4), (3, 4), (3, 4), (3, 4)]
    params = random_params(rng, shapes)
    grads = random_grads(rng, shapes, 5, [1.0, 0.01, 1.0, 0.01])
    groups = [[[0, 1], {"lr": 0.05, "weight_decay": 0.3}],
              [[2, 3], {"lr": 0.002, "weight_decay": 0.0, "betas": (0.5, 0.6)}]]
    got = student.run(adamw_probe, params, grads, groups, {"lr": 0.01})
    assert_close(got, torch_adamw(params, grads, groups, {"lr": 0.01}), atol=1e-12, rtol=1e-10,
                 what="AdamW with two param groups of same-shaped parameters (float64)",
                 hint="read lr, betas, eps, weight_decay from each group; keep state per parameter "
                      "(self.state[p]), not per position in a group")


def test_adamw_state_dict_resumes_the_same_run(student, rng):
    shapes = [(4, 4), (4,)]
    params = random_params(rng, shapes)
    grads = random_grads(rng, shapes, 8, [1.0, 0.1])
    options = {"lr": 0.01, "weight_decay": 0.1}
    got = student.run(adamw_resume_probe, params, grads, options, 4)
    want = torch_adamw(params, grads, [[[0, 1], {}]], options)[-1]
    assert_close(got, want, atol=1e-12, rtol=1e-10,
                 what="AdamW: 4 steps, state_dict saved and loaded into a new AdamW, 4 more steps",
                 hint="keep m, v and the step count in self.state[p] so the base class saves and loads them")


# ---------------------------------------------------------------- the schedule

def test_lr_warmup_starts_at_zero_and_rises_linearly(student):
    got = student.run(lr_probe, [0, 1, 2, 3, 4], 6e-4, 6e-5, 4, 20)
    assert_close(got, [0.0, 1.5e-4, 3e-4, 4.5e-4, 6e-4], atol=1e-15, rtol=1e-12,
                 what="lr_at(0..4) with warmup_iters=4, max_lr=6e-4",
                 hint="lr = it / warmup_iters * max_lr for it < warmup_iters: 0 at it=0, max_lr at it=warmup_iters")


@pytest.mark.parametrize("warmup, end", [(4, 20), (0, 7)], ids=["warmup", "no-warmup"])
def test_lr_follows_torch_cosine_then_stays_at_min(student, warmup, end):
    its = list(range(0, end + 6))
    got = student.run(lr_probe, its, 1.0, 0.1, warmup, end)
    assert_close(got, torch_schedule(its, 1.0, 0.1, warmup, end), atol=1e-12, rtol=1e-9,
                 what=f"lr_at(0..{end + 5}), warmup_iters={warmup}, cosine_iters={end}, max 1.0, min 0.1",
                 hint="cosine over (it - warmup_iters) / (cosine_iters - warmup_iters), reaching min_lr exactly "
                      "at it = cosine_iters (an absolute iteration), min_lr after")


# ---------------------------------------------------------------- clipping

def test_clip_uses_one_global_norm(student, rng):
    shapes = [(3, 4), (5,), (2, 2)]
    grads = [torch.randn(s, generator=rng, dtype=torch.float64) * c for s, c in zip(shapes, (1.0, 3.0, 0.2))]
    norm, got = student.run(clip_probe, shapes, grads, 1.0)
    ps = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in shapes]
    for p, g in zip(ps, grads):
        p.grad = g.clone()
    want_norm = float(torch.nn.utils.clip_grad_norm_(ps, 1.0))
    assert_close(got, [p.grad for p in ps], atol=1e-12, rtol=1e-10,
                 what="gradients clipped to max_norm=1.0 (three parameters, global norm ~7)",
                 hint="one norm over ALL gradients together; scale each by max_norm / (norm + eps)")
    assert_close(norm, want_norm, atol=1e-12, rtol=1e-10, what="clip_grad_norm's return value",
                 hint="return the norm measured BEFORE clipping")


def test_clip_leaves_small_gradients_alone(student, rng):
    shapes = [(4,), (2, 3)]
    grads = [torch.randn(s, generator=rng, dtype=torch.float64) * 0.1 for s in shapes]
    norm, got = student.run(clip_probe, shapes, grads, 5.0)
    assert_close(got, grads, atol=0, rtol=0, what="gradients whose global norm (~0.3) is below max_norm=5",
                 hint="scale by min(1, max_norm / (norm + eps)): never scale up")
    want_norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
    assert_close(norm, want_norm, atol=1e-12, rtol=1e-10, what="the returned norm (no clipping needed)")


def test_clip_skips_parameters_without_gradient(student, rng):
    shapes = [(3,), (4,), (2,)]
    grads = [torch.randn(3, generator=rng, dtype=torch.float64) * 4, None,
             torch.randn(2, generator=rng, dtype=torch.float64) * 4]
    norm, got = student.run(clip_probe, shapes, grads, 2.0)
    assert got[1] is None, "clip_grad_norm gave a gradient to a parameter that had none"
    ps = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in shapes]
    for p, g in zip(ps, grads):
        p.grad = None if g is None else g.clone()
    want_norm = float(torch.nn.utils.clip_grad_norm_(ps, 2.0))
    assert_close([got[0], got[2], norm], [ps[0].grad, ps[2].grad, want_norm], atol=1e-12, rtol=1e-10,
                 what="clipping when one parameter has no gradient", hint="skip parameters whose .grad is None")


# ---------------------------------------------------------------- batches

def test_get_batch_gives_windows_and_their_next_tokens(student, rng):
    tokens = torch.randint(0, 50, (300,), generator=rng)
    [[x, y]] = student.run(batches_probe, tokens, 6, 10, [0], [0])
    assert_equal([tuple(x.shape), tuple(y.shape), x.dtype, y.dtype], [(6, 10), (6, 10), torch.int64, torch.int64],
                 what="get_batch(tokens, 6, 10, g): shapes and dtypes of x, y")
    for b in range(6):
        if find_window(tokens, x[b], y[b]) is None:
            raise Mismatch(f"get_batch: row {b} of (x, y) is not a window of the tokens and the window one "
                           f"token later", f"x[{b}] = {x[b].tolist()}, y[{b}] = {y[b].tolist()}",
                           "y = tokens[s+1 : s+T+1] for the same start s as x = tokens[s : s+T] "
                           "(not x + 1: tokens are ids, not numbers that count up)")


def test_get_batch_draws_with_the_given_generator_only(student, rng):
    tokens = torch.randint(0, 50, (400,), generator=rng)
    got = student.run(batches_probe, tokens, 8, 5, [11, 11, 12], [0, 1, 0])
    assert_equal(got[1], got[0], what="two batches from generators with the same seed (torch's global seed differs)",
                 hint="draw the starts with torch.randint(..., generator=generator)")
    if torch.equal(got[0][0], got[2][0]):
        raise Mismatch("get_batch: generators with different seeds gave the same batch",
                       hint="draw the starts with torch.randint(..., generator=generator)")


@pytest.mark.parametrize("extra", [1, 2], ids=["one-window", "two-windows"])
def test_get_batch_reaches_the_last_window(student, rng, extra):
    T = 5
    tokens = torch.randint(0, 1000, (T + extra,), generator=rng)
    got = student.run(many_batches_probe, tokens, 4, T, 50, 0)
    starts = {find_window(tokens, x[b], y[b]) for x, y in got for b in range(4)}
    assert_equal(sorted(starts, key=str), list(range(extra)),
                 what=f"window starts drawn in 50 batches of 4 from {T + extra} tokens, block_size={T}",
                 hint="every s from 0 to len(tokens) - block_size - 1 is possible; torch.randint's high is exclusive")


# ---------------------------------------------------------------- loss scaling

def scaler_case(rng):
    state = {k: v.clone() for k, v in torch.nn.Linear(4, 1).state_dict().items()}
    xs = [torch.randn(8, 4, generator=rng) * 4 for _ in range(14)]
    ys = [torch.randn(8, 1, generator=rng) * 10 for _ in range(14)]
    xs[9][0, 0] = math.nan
    return state, xs, ys


def torch_scaler_run(state, xs, ys, init_scale, growth_interval, lr):
    model = torch.nn.Linear(4, 1)
    model.load_state_dict(state)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=growth_interval)
    records = []
    for x, y in zip(xs, ys):
        loss = ((model(x) - y) ** 2).mean()
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        scale = scaler.get_scale()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        records.append({"scale": scale, "stepped": scaler.get_scale() >= scale,
                        "params": {k: v.clone() for k, v in model.state_dict().items()}})
    return records


def test_loss_scaler_behaves_like_torch_grad_scaler(student):
    rng = torch.Generator().manual_seed(1)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        state, xs, ys = scaler_case(rng)
    got = student.run(scaler_probe, state, xs, ys, 2.0 ** 124, 3, 0.01)
    want = torch_scaler_run(state, xs, ys, 2.0 ** 124, 3, 0.01)
    assert_equal([r["scale"] for r in got], [r["scale"] for r in want],
                 what="the scale at each of 14 steps (starting at 2^124: the first steps overflow; a NaN at step 9)",
                 hint="halve the scale after a step with inf/NaN gradients (and reset the count); double it after "
                      "growth_interval good steps in a row")
    assert_equal([r["stepped"] for r in got], [r["stepped"] for r in want],
                 what="which steps were taken (step() returns True) and which skipped",
                 hint="skip optimizer.step() when any unscaled gradient is inf or NaN")
    assert_close([r["params"] for r in got], [r["params"] for r in want], atol=1e-6, rtol=1e-5,
                 what="the parameters after each step", hint="divide the gradients by the scale before the step")


# ---------------------------------------------------------------- train_step

def torch_train_steps(state, xs, ys, precision, init_scale, max_norm, lr):
    """The oracle: autocast, F.cross_entropy, GradScaler, clip_grad_norm_, SGD."""
    model = bigram_from(state)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    scaler = None if init_scale is None else torch.amp.GradScaler("cpu", init_scale=init_scale)
    losses = []
    for x, y in zip(xs, ys):
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            logits = model(x)
        loss = flat_ce(logits.float(), y)
        (loss if scaler is None else scaler.scale(loss)).backward()
        if scaler is not None:
            scaler.unscale_(opt)
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        if scaler is None:
            opt.step()
        else:
            scaler.step(opt)
            scaler.update()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    return losses, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("precision, init_scale, max_norm", [("fp32", None, None), ("fp32", None, 0.5),
                                                             ("bf16", None, 0.5), ("fp16", 1024.0, 0.5)])
def test_train_step_matches_a_torch_step(student, rng, precision, init_scale, max_norm):
    V, d = 12, 8
    state = fresh_state(V, d, 0)
    xs = [torch.randint(0, V, (4, 6), generator=rng) for _ in range(4)]
    ys = [torch.randint(0, V, (4, 6), generator=rng) for _ in range(4)]
    losses, zeroed, params, dtypes = student.run(train_step_probe, state, xs, ys, precision, init_scale,
                                                 max_norm, 0.5)
    want_losses, want_params = torch_train_steps(state, xs, ys, precision, init_scale, max_norm, 0.5)
    tol = 1e-5 if precision == "fp32" else 2e-3
    setting = f"precision={precision}, scaler={'LossScaler(%g)' % init_scale if init_scale else None}, " \
              f"max_norm={max_norm}"
    want_dtype = {"fp32": "torch.float32", "bf16": "torch.bfloat16", "fp16": "torch.float16"}[precision]
    assert_equal(dtypes, [want_dtype] * 4, what=f"dtype of the model's last Linear output in each step ({setting})",
                 hint="run the forward pass under torch.autocast(device_type, dtype=...) for bf16 and fp16")
    assert_equal(zeroed, [True] * 4, what=f"gradients zeroed after each train_step ({setting})",
                 hint="finish with optimizer.zero_grad(): otherwise the next step adds to this step's gradients")
    assert_close(losses, want_losses, atol=tol, rtol=tol, what=f"losses returned by 4 train_steps ({setting})",
                 hint="return the loss of the batch before the update, as a float")
    assert_close(params, want_params, atol=tol, rtol=tol, what=f"parameters after 4 train_steps ({setting})",
                 hint="backward, unscale, THEN clip (clipping scaled gradients clips the wrong norm), step, zero")


# ---------------------------------------------------------------- checkpoints

def test_checkpoint_resume_is_exact(student, rng):
    tokens = torch.randint(0, 10, (200,), generator=rng)
    state, other = fresh_state(10, 6, 0), fresh_state(10, 6, 1)
    straight = student.run(resume_probe, state, other, tokens, 5, 10, False)
    resumed = student.run(resume_probe, state, other, tokens, 5, 10, True)
    ckpt = torch.load(io.BytesIO(resumed["file"]), weights_only=True)
    for key in ("model", "optimizer", "iteration"):
        if key not in ckpt:
            raise Mismatch(f"the checkpoint has no {key!r} entry", f"it has {sorted(ckpt)}")
    assert_equal(resumed["iteration"], 5, what="load_checkpoint(...)['iteration'] after saving at iteration 5")
    assert_equal(resumed["losses"], straight["losses"],
                 what="losses of 5 steps + save + load into fresh objects + 5 steps vs 10 steps straight",
                 hint="save and restore the model, the optimizer (momentum), and torch's RNG state (dropout)")
    assert_close(resumed["params"], straight["params"], atol=0, rtol=0,
                 what="parameters after a resumed run vs a straight run: must be bit-identical")
    assert_equal(resumed["next_random"], straight["next_random"],
                 what="the next draws of Python's random, numpy's and torch's generators after resuming",
                 hint="save random.getstate(), np.random.get_state() and torch.get_rng_state(); restore all three")


# ---------------------------------------------------------------- estimate_loss

def test_estimate_loss_is_the_loss_over_fixed_windows_in_eval_mode(student, rng):
    V, T = 9, 5
    state = fresh_state(V, 6, 0)
    tokens = torch.randint(0, V, (40,), generator=rng)
    values, training = student.run(estimate_loss_probe, state, 0.5, tokens, T, [3, 7, 100], 35)
    want = loss_on_all_windows(state, tokens, T)
    assert_close(values, [want] * 3, atol=1e-5, rtol=1e-5,
                 what=f"estimate_loss with n_windows = all {len(tokens) - T} windows, batch sizes 3, 7 and 100, "
                      f"on a model with dropout",
                 hint="evaluate in model.eval() (no dropout) under torch.no_grad(); the mean over all window tokens")
    assert_equal(training, True, what="model.training after estimate_loss on a model in training mode",
                 hint="put the model back into the mode it was in")


def test_estimate_loss_with_two_windows_takes_the_first_and_the_last(student, rng):
    V, T = 9, 5
    state = fresh_state(V, 6, 0)
    tokens = torch.randint(0, V, (30,), generator=rng)
    values, _ = student.run(estimate_loss_probe, state, 0.0, tokens, T, [1, 2], 2)
    ends = torch.cat([tokens[:T + 1], tokens[-T - 1:]])
    want = (loss_on_all_windows(state, tokens[:T + 1], T) + loss_on_all_windows(state, tokens[-T - 1:], T)) / 2
    assert_close(values, [want, want], atol=1e-5, rtol=1e-5,
                 what=f"estimate_loss with n_windows=2 on {len(tokens)} tokens ({len(ends)} used)",
                 hint="window i starts at i * (N - 1) // (n_windows - 1), N = len(tokens) - block_size")


# ---------------------------------------------------------------- train

def test_train_learns_and_reports_its_history(student):
    V = 16
    train_tokens, val_tokens = markov_tokens(V, 3000, 0), markov_tokens(V, 300, 1)
    state = fresh_state(V, 16, 0)
    got = student.run(train_probe, state, 0.0, train_tokens, val_tokens, TRAIN_CONFIG, [120])
    [history] = got["histories"]
    final = loss_on_all_windows(got["params"], val_tokens, 8)
    start = loss_on_all_windows(state, val_tokens, 8)
    if not final < 0.5 * math.log(V):
        raise Mismatch(f"train: validation loss went from {start:.3f} to {final:.3f} in 120 steps; expected below "
                       f"{0.5 * math.log(V):.3f} (half of ln V; the best possible is ln 2 = 0.693)",
                       hint="check the other tests first: the loop only puts your parts together")
    assert_equal([sorted(r) for r in history], [HISTORY_KEYS] * 120, what="keys of the 120 history records")
    assert_equal([r["iteration"] for r in history], list(range(120)), what="history[i]['iteration']")
    assert_close([r["lr"] for r in history], torch_schedule(range(120), 0.05, 0.005, 10, 120), atol=1e-12,
                 rtol=1e-9, what="history[i]['lr'] (warmup 10, cosine to 120)",
                 hint="set lr_at(it, ...) into every param group before step it")
    evaluated = [r["iteration"] for r in history if r["val_loss"] is not None]
    assert_equal(evaluated, [39, 79, 119], what="iterations with a val_loss (eval_interval=40, max_iters=120)",
                 hint="evaluate after every eval_interval steps (after step it when (it + 1) % eval_interval == 0); "
                      "val_loss is None in the other records")
    assert_close(history[-1]["val_loss"], final, atol=1e-4, rtol=1e-4,
                 what="the last val_loss (eval_iters covers every validation window)",
                 hint="estimate_loss(model, tokens_val, block_size, batch_size, eval_iters) on the trained model")


def test_train_first_warmup_step_changes_nothing(student):
    V = 16
    state = fresh_state(V, 16, 0)
    config = dict(TRAIN_CONFIG, eval_interval=1)
    got = student.run(train_probe, state, 0.0, markov_tokens(V, 500, 0), markov_tokens(V, 100, 1), config, [1])
    assert_equal([r["lr"] for r in got["histories"][0]], [0.0], what="lr of the only step, iteration 0 of a warmup")
    assert_close(got["params"], state, atol=0, rtol=0, what="parameters after one step at lr 0",
                 hint="iteration 0 uses lr_at(0) = 0; weight decay is lr * weight_decay, also 0")


def test_train_resumes_exactly_from_its_checkpoint(student):
    V = 16
    train_tokens, val_tokens = markov_tokens(V, 1000, 0), markov_tokens(V, 200, 1)
    state = fresh_state(V, 16, 0)
    config = dict(TRAIN_CONFIG, max_iters=30, cosine_iters=30, eval_interval=10)
    straight = student.run(train_probe, state, 0.3, train_tokens, val_tokens, config, [30])
    evaluated = [r["iteration"] for r in straight["histories"][0] if r["val_loss"] is not None]
    assert_equal(evaluated, [9, 19, 29], what="iterations with a val_loss (eval_interval=10, max_iters=30)",
                 hint="evaluate after step it when (it + 1) % eval_interval == 0; val_loss is None otherwise")
    resumed = student.run(train_probe, state, 0.3, train_tokens, val_tokens, config, [15, 30])
    drop = ["tokens_per_s"]
    strip = [[{k: v for k, v in r.items() if k not in drop} for r in h] for h in
             (straight["histories"][0], resumed["histories"][1])]
    assert_equal(strip[1], strip[0], what="history of a run stopped at 15 and resumed to 30 vs one run of 30 "
                                          "(tokens_per_s left out)",
                 hint="the resumed run returns the whole history; save it in the checkpoint, with the batch "
                      "generator's state (generator.get_state()) and the RNG states")
    assert_close(resumed["params"], straight["params"], atol=0, rtol=0,
                 what="parameters after 15 + 15 steps (resumed) vs 30 straight: must be bit-identical")


def test_train_saves_a_checkpoint_on_ctrl_c(student):
    V = 16
    train_tokens, val_tokens = markov_tokens(V, 1000, 0), markov_tokens(V, 200, 1)
    state = fresh_state(V, 16, 0)
    config = dict(TRAIN_CONFIG, max_iters=20, cosine_iters=20, eval_interval=5)
    straight = student.run(train_probe, state, 0.0, train_tokens, val_tokens, config, [20])
    got = student.run(train_probe, state, 0.0, train_tokens, val_tokens, config, [-7, 20])
    assert_equal(got["interrupted"], [True, False], what="runs that raised KeyboardInterrupt",
                 hint="catch KeyboardInterrupt, save a checkpoint, then raise it again")
    assert_close(got["params"], straight["params"], atol=0, rtol=0,
                 what="parameters after Ctrl-C at step 7, resume, and 13 more steps vs 20 straight")

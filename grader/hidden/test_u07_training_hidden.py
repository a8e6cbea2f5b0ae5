"""Hidden tests for unit u07, training: never shipped to students.

Stronger than the public tests: cross-entropy on random shapes and ignore
patterns; AdamW against torch on random hyperparameters, float32 too, with a
closure; the schedule against the reference on random settings; clipping
with its eps; every start of get_batch reachable, int32 tokens; the loss
scaler with other factors, resumed through its state_dict, with unscale_
called twice or left to step(); train_step where float16 overflows and with
a model that returns (logits, loss); checkpoints with extra entries and
without RNG; estimate_loss against the reference; train in bf16 and fp16,
its periodic checkpoints and its weight-decay groups.
"""

import io
import math
import os
import tempfile

import pytest
import torch
import torch.nn.functional as F

from grader.testing import Mismatch, assert_close, assert_equal

pytestmark = pytest.mark.u07


# ---------------------------------------------------------------- models

def bigram(V, d, dropout=0.0):
    return torch.nn.Sequential(torch.nn.Embedding(V, d), torch.nn.Dropout(dropout), torch.nn.Linear(d, V))


def bigram_from(state, dropout=0.0):
    V, d = state["0.weight"].shape
    model = bigram(V, d, dropout)
    model.load_state_dict(state)
    return model


def fresh_state(V, d, seed):
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in bigram(V, d).state_dict().items()}


def as_tuple_model(model):
    """model(x) now returns (logits, None), like u06's GPT without targets."""
    model.register_forward_hook(lambda module, inputs, output: (output, None))
    return model


# ---------------------------------------------------------------- probes

def ce_probe(pkg, logits, targets, ignore_index):
    return pkg.training.cross_entropy(logits, targets, ignore_index=ignore_index).detach()


def ce_grad_probe(pkg, logits, targets):
    z = logits.clone().requires_grad_(True)
    pkg.training.cross_entropy(z, targets).backward()
    return z.grad


def adamw_probe(pkg, params, grads, groups, options, use_closure):
    ps = [torch.nn.Parameter(p.clone()) for p in params]
    opt = pkg.training.AdamW([dict(params=[ps[i] for i in idx], **o) for idx, o in groups], **options)
    after, returned = [], []
    for step in grads:
        for p, g in zip(ps, step):
            p.grad = None if g is None else g.clone()
        if use_closure:
            returned.append(float(opt.step(lambda: torch.tensor(1.5))))
        else:
            opt.step()
        after.append([p.detach().clone() for p in ps])
    return after, returned


def lr_probe(pkg, its, max_lr, min_lr, warmup_iters, cosine_iters):
    values = [pkg.training.lr_at(it, max_lr, min_lr, warmup_iters, cosine_iters) for it in its]
    return values, [type(v).__name__ for v in values]


def clip_probe(pkg, grads, max_norm, eps):
    ps = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(ps, grads):
        p.grad = g.clone()
    norm = pkg.training.clip_grad_norm(ps, max_norm, eps=eps)
    return float(norm), [p.grad for p in ps]


def many_batches_probe(pkg, tokens, batch_size, block_size, n, seed):
    g = torch.Generator().manual_seed(seed)
    return [list(pkg.training.get_batch(tokens, batch_size, block_size, g)) for _ in range(n)]


def scaler_probe(pkg, state, xs, ys, options, save_at, unscale_twice, explicit_unscale):
    model = torch.nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
    model.load_state_dict(state)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = pkg.training.LossScaler(**options)
    records = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        if i == save_at:
            saved = scaler.state_dict()
            scaler = pkg.training.LossScaler(**dict(options, init_scale=1.0))
            scaler.load_state_dict(saved)
        loss = ((model(x) - y) ** 2).mean()
        scaler.scale(loss).backward()
        if explicit_unscale:
            scaler.unscale_(opt)
        if unscale_twice:
            scaler.unscale_(opt)
        scale = scaler.get_scale()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        records.append({"scale": scale, "params": {k: v.clone() for k, v in model.state_dict().items()}})
    return records


def train_step_probe(pkg, state, xs, ys, precision, init_scale, max_norm, lr, tuple_output):
    model = bigram_from(state)
    if tuple_output:
        as_tuple_model(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    scaler = None if init_scale is None else pkg.training.LossScaler(init_scale=init_scale)
    losses, scales = [], []
    for x, y in zip(xs, ys):
        losses.append(pkg.training.train_step(model, x, y, opt, precision=precision, scaler=scaler,
                                              max_norm=max_norm))
        scales.append(None if scaler is None else scaler.get_scale())
    return losses, scales, {k: v.clone() for k, v in model.state_dict().items()}


def checkpoint_extras_probe(pkg, state, rng):
    """Save with extra entries; draw; load; draw again. Returns the extras and the draws."""
    model = bigram_from(state)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "c.pt")
        torch.manual_seed(5)
        pkg.training.save_checkpoint(path, model, opt, 12, rng=rng, note="hello", numbers=[1, 2, 3],
                                     table=torch.arange(4))
        first = torch.rand(3)
        with open(path, "rb") as f:
            raw = f.read()
        ckpt = pkg.training.load_checkpoint(path, bigram(*state["0.weight"].shape), opt)
        second = torch.rand(3)
    return {"note": ckpt["note"], "numbers": ckpt["numbers"], "table": ckpt["table"],
            "iteration": ckpt["iteration"], "first": first, "second": second, "file": raw}


def estimate_loss_probe(pkg, state, tokens, block_size, batch_size, n_windows, tuple_output):
    model = bigram_from(state)
    if tuple_output:
        as_tuple_model(model)
    value = pkg.training.estimate_loss(model, tokens, block_size, batch_size, n_windows)
    return float(value), [p.grad is None for p in model.parameters()]


def train_probe(pkg, state, train_tokens, val_tokens, config, watch):
    """Your train(); the callback reads the checkpoint on disk after the iterations in `watch`."""
    torch.manual_seed(0)
    model = bigram_from(state)
    seen = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ckpt.pt")

        def callback(record, model):
            if record["iteration"] in watch:
                seen[record["iteration"]] = (torch.load(path, weights_only=True)["iteration"]
                                             if os.path.exists(path) else None)

        cfg = pkg.training.TrainConfig(**dict(config, out_dir=tmp, progress=False))
        history = pkg.training.train(model, train_tokens, val_tokens, cfg, callbacks=[callback])
        with open(path, "rb") as f:
            raw = f.read()
    return {"history": history, "seen": seen, "file": raw,
            "params": {k: v.clone() for k, v in model.state_dict().items()}}


# ---------------------------------------------------------------- helpers

def flat_ce(logits, targets, ignore_index=-100):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=ignore_index)


def torch_adamw(params, grads, groups, options):
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


def uniform(rng, lo, hi):
    return lo + (hi - lo) * float(torch.rand((), generator=rng, dtype=torch.float64))


def markov_tokens(V, n, seed):
    g = torch.Generator().manual_seed(seed)
    coin = torch.randint(0, 2, (n,), generator=g)
    out = [0]
    for i in range(1, n):
        a = out[-1]
        out.append((3 * a + 1) % V if coin[i] else (5 * a + 2) % V)
    return torch.tensor(out)


def loss_on_all_windows(state, tokens, T):
    model = bigram_from(state).eval()
    starts = range(len(tokens) - T)
    x = torch.stack([tokens[s:s + T] for s in starts])
    y = torch.stack([tokens[s + 1:s + T + 1] for s in starts])
    with torch.no_grad():
        return float(flat_ce(model(x), y))


def find_window(tokens, x_row, y_row):
    T = len(x_row)
    for s in range(len(tokens) - T):
        if torch.equal(tokens[s:s + T], x_row) and torch.equal(tokens[s + 1:s + T + 1], y_row):
            return s
    return None


CONFIG = dict(batch_size=8, block_size=8, max_iters=120, max_lr=0.05, min_lr=0.005, warmup_iters=10,
              cosine_iters=120, weight_decay=0.1, betas=(0.9, 0.95), max_norm=1.0, precision="fp32",
              eval_interval=40, eval_iters=1000, checkpoint_interval=1000, seed=4)


# ---------------------------------------------------------------- cross-entropy

@pytest.mark.parametrize("shape", [(7,), (13, 5), (2, 3, 4, 6), (1, 1, 30)], ids=str)
def test_cross_entropy_on_random_shapes_and_ignores(student, rng, shape):
    logits = torch.randn(*shape, generator=rng, dtype=torch.float64) * 5
    targets = torch.randint(0, shape[-1], shape[:-1], generator=rng)
    if targets.dim():
        drop = torch.rand(targets.shape, generator=rng) < 0.4
        drop.view(-1)[0] = False
        targets = targets.masked_fill(drop, -100)
    got = student.run(ce_probe, logits, targets, -100)
    assert_close(got, flat_ce(logits, targets), atol=1e-10, rtol=1e-10,
                 what=f"cross_entropy on logits {tuple(shape)} with random ignored targets")


def test_cross_entropy_keeps_the_logits_dtype(student, rng):
    logits = torch.randn(4, 6, generator=rng)
    targets = torch.randint(0, 6, (4,), generator=rng)
    got = student.run(ce_probe, logits, targets, -100)
    assert_close(got, flat_ce(logits, targets), atol=1e-6, rtol=1e-5, what="cross_entropy of float32 logits")


def test_cross_entropy_gradient_at_huge_logits(student, rng):
    logits = torch.randn(3, 4, 8, generator=rng, dtype=torch.float64) * 1e4
    targets = torch.randint(0, 8, (3, 4), generator=rng)
    grad = student.run(ce_grad_probe, logits, targets)
    z = logits.clone().requires_grad_(True)
    flat_ce(z, targets).backward()
    assert_close(grad, z.grad, atol=1e-10, rtol=1e-8, what="gradient of cross_entropy at logits of size 1e4")


# ---------------------------------------------------------------- AdamW

@pytest.mark.parametrize("trial", range(4))
def test_adamw_random_hyperparameters(student, rng, trial):
    shapes = [(3, 5), (4,), (2, 3)]
    params = [torch.randn(s, generator=rng, dtype=torch.float64) for s in shapes]
    grads = [[torch.randn(s, generator=rng, dtype=torch.float64) * 10 ** uniform(rng, -4, 2) for s in shapes]
             for _ in range(8)]
    grads[3][0] = None
    options = {"lr": 10 ** uniform(rng, -4, -1), "betas": (uniform(rng, 0.5, 0.95), uniform(rng, 0.9, 0.9999)),
               "eps": 10 ** uniform(rng, -10, -3), "weight_decay": uniform(rng, 0.0, 0.5)}
    groups = [[[0, 2], {}], [[1], {"lr": options["lr"] * 3, "weight_decay": 0.0}]]
    got, _ = student.run(adamw_probe, params, grads, groups, options, False)
    assert_close(got, torch_adamw(params, grads, groups, options), atol=1e-12, rtol=1e-9,
                 what=f"AdamW trial {trial}: random lr, betas, eps, weight decay, two groups (float64)")


def test_adamw_float32_and_closure(student, rng):
    shapes = [(6, 6), (6,)]
    params = [torch.randn(s, generator=rng) for s in shapes]
    grads = [[torch.randn(s, generator=rng) for s in shapes] for _ in range(5)]
    got, returned = student.run(adamw_probe, params, grads, [[[0, 1], {}]], {"lr": 0.01}, True)
    assert_close(got, torch_adamw(params, grads, [[[0, 1], {}]], {"lr": 0.01}), atol=1e-6, rtol=1e-5,
                 what="AdamW on float32 parameters, step(closure)")
    assert_close(returned, [1.5] * 5, what="the value step(closure) returns (the closure's loss)")


# ---------------------------------------------------------------- schedule

@pytest.mark.parametrize("trial", range(3))
def test_lr_random_settings_against_the_reference(student, reference, rng, trial):
    warmup = int(torch.randint(1, 50, (), generator=rng))
    end = warmup + int(torch.randint(1, 300, (), generator=rng))
    max_lr = 10 ** uniform(rng, -5, -1)
    min_lr = max_lr * uniform(rng, 0.0, 0.5)
    its = sorted({0, 1, warmup - 1, warmup, warmup + 1, end - 1, end, end + 1, end + 50,
                  *torch.randint(0, end + 20, (30,), generator=rng).tolist()})
    got, types = student.run(lr_probe, its, max_lr, min_lr, warmup, end)
    want, _ = reference.run(lr_probe, its, max_lr, min_lr, warmup, end)
    assert_close(got, want, atol=1e-15, rtol=1e-9, what=f"lr_at on a random schedule (trial {trial})")
    assert_equal(types, ["float"] * len(its), what="the type of lr_at's result")


# ---------------------------------------------------------------- clipping

@pytest.mark.parametrize("max_norm, eps", [(0.3, 1e-6), (2.0, 0.5), (1e3, 1e-6)])
def test_clip_against_the_reference(student, reference, rng, max_norm, eps):
    grads = [torch.randn(s, generator=rng) * 2 for s in [(7, 3), (11,), (2, 2, 2), (1,)]]
    got = student.run(clip_probe, grads, max_norm, eps)
    want = reference.run(clip_probe, grads, max_norm, eps)
    assert_close(got, want, atol=1e-6, rtol=1e-5, what=f"clip_grad_norm(max_norm={max_norm}, eps={eps}), float32")


# ---------------------------------------------------------------- batches

def test_get_batch_every_start_and_int32_tokens(student, rng):
    T = 4
    tokens = torch.randint(0, 10000, (T + 6,), generator=rng, dtype=torch.int32)
    got = student.run(many_batches_probe, tokens, 5, T, 80, 3)
    assert_equal([x.dtype for x, _ in got[:1]] + [y.dtype for _, y in got[:1]], [torch.int64, torch.int64],
                 what="dtypes of x and y from int32 tokens")
    long = tokens.long()
    starts = {find_window(long, x[b], y[b]) for x, y in got for b in range(5)}
    assert_equal(sorted(starts, key=str), list(range(6)), what="starts seen in 80 batches of 5 (6 possible)")


def test_get_batch_successive_draws_differ(student, rng):
    tokens = torch.randint(0, 100, (500,), generator=rng)
    got = student.run(many_batches_probe, tokens, 8, 6, 2, 0)
    if torch.equal(got[0][0], got[1][0]):
        raise Mismatch("two successive batches from one generator are the same")


# ---------------------------------------------------------------- loss scaling

def scaler_case(seed, n):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    state = {k: v.clone() for k, v in torch.nn.Linear(3, 2).state_dict().items()}
    xs = [torch.randn(6, 3, generator=g) * 4 for _ in range(n)]
    ys = [torch.randn(6, 2, generator=g) * 10 for _ in range(n)]
    xs[n // 2][1, 1] = math.inf
    return state, xs, ys


def torch_scaler_run(state, xs, ys, options):
    model = torch.nn.Linear(3, 2)
    model.load_state_dict(state)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", **options)
    records = []
    for x, y in zip(xs, ys):
        loss = ((model(x) - y) ** 2).mean()
        scaler.scale(loss).backward()
        scale = scaler.get_scale()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        records.append({"scale": scale, "params": {k: v.clone() for k, v in model.state_dict().items()}})
    return records


@pytest.mark.parametrize("save_at, twice, explicit", [(-1, False, False), (7, False, True), (-1, True, True)],
                         ids=["step-unscales", "state-dict-resume", "unscale-twice"])
def test_loss_scaler_other_factors(student, save_at, twice, explicit):
    options = {"init_scale": 2.0 ** 126, "growth_factor": 4.0, "backoff_factor": 0.25, "growth_interval": 2}
    state, xs, ys = scaler_case(3, 16)
    got = student.run(scaler_probe, state, xs, ys, options, save_at, twice, explicit)
    want = torch_scaler_run(state, xs, ys, options)
    assert_equal([r["scale"] for r in got], [r["scale"] for r in want],
                 what="scales of a LossScaler(growth 4, backoff 0.25, interval 2)")
    assert_close([r["params"] for r in got], [r["params"] for r in want], atol=1e-6, rtol=1e-5,
                 what="parameters stepped through a LossScaler(growth 4, backoff 0.25, interval 2)")


# ---------------------------------------------------------------- train_step

def torch_train_steps(state, xs, ys, precision, init_scale, max_norm, lr):
    model = bigram_from(state)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    scaler = None if init_scale is None else torch.amp.GradScaler("cpu", init_scale=init_scale)
    losses, scales = [], []
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
        scales.append(None if scaler is None else scaler.get_scale())
    return losses, scales, {k: v.clone() for k, v in model.state_dict().items()}


def test_train_step_fp16_overflow_is_skipped(student, rng):
    V = 10
    state = fresh_state(V, 8, 0)
    xs = [torch.randint(0, V, (4, 5), generator=rng) for _ in range(6)]
    ys = [torch.randint(0, V, (4, 5), generator=rng) for _ in range(6)]
    got = student.run(train_step_probe, state, xs, ys, "fp16", 2.0 ** 22, 1.0, 0.5, False)
    want = torch_train_steps(state, xs, ys, "fp16", 2.0 ** 22, 1.0, 0.5)
    assert want[1][0] < 2.0 ** 22 and want[1][-1] == want[1][-2], "the case must have skipped and taken steps"
    assert_equal(got[1], want[1], what="scales after each fp16 train_step starting at 2^22 (float16 overflows)")
    assert_close(got[2], want[2], atol=2e-3, rtol=2e-3, what="parameters after fp16 steps with overflows")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_step_with_a_model_returning_a_tuple(student, rng, precision):
    V = 10
    state = fresh_state(V, 8, 1)
    xs = [torch.randint(0, V, (3, 5), generator=rng) for _ in range(3)]
    ys = [torch.randint(0, V, (3, 5), generator=rng) for _ in range(3)]
    got = student.run(train_step_probe, state, xs, ys, precision, None, None, 0.3, True)
    want = torch_train_steps(state, xs, ys, precision, None, None, 0.3)
    tol = 1e-5 if precision == "fp32" else 2e-3
    assert_close(got[0], want[0], atol=tol, rtol=tol, what=f"losses of a model returning (logits, None), {precision}")
    assert_close(got[2], want[2], atol=tol, rtol=tol, what=f"parameters, model returning (logits, None), {precision}")


# ---------------------------------------------------------------- checkpoints

def test_checkpoint_keeps_extra_entries(student):
    got = student.run(checkpoint_extras_probe, fresh_state(6, 4, 0), True)
    assert_equal([got["note"], got["numbers"], got["iteration"]], ["hello", [1, 2, 3], 12],
                 what="extra entries and the iteration read back by load_checkpoint")
    assert_equal(got["table"], torch.arange(4), what="a tensor saved as an extra entry")
    assert_equal(got["second"], got["first"], what="torch draws after save and after load (rng=True)")
    ckpt = torch.load(io.BytesIO(got["file"]), weights_only=True)
    assert_equal(ckpt["note"], "hello", what="an extra entry in the file, read with weights_only=True")


def test_checkpoint_without_rng_leaves_the_generators_alone(student):
    got = student.run(checkpoint_extras_probe, fresh_state(6, 4, 0), False)
    if torch.equal(got["first"], got["second"]):
        raise Mismatch("load_checkpoint rewound torch's RNG from a checkpoint saved with rng=False")
    ckpt = torch.load(io.BytesIO(got["file"]), weights_only=True)
    assert_equal(ckpt["iteration"], 12, what="the iteration in a checkpoint saved with rng=False")


# ---------------------------------------------------------------- estimate_loss

@pytest.mark.parametrize("n_windows, batch_size, tuple_output", [(7, 3, False), (13, 4, True), (1, 5, False)])
def test_estimate_loss_against_the_reference(student, reference, rng, n_windows, batch_size, tuple_output):
    V, T = 11, 6
    state = fresh_state(V, 5, 2)
    tokens = torch.randint(0, V, (T + 61,), generator=rng)  # 61 starts: spacing 60 / (n - 1) is whole
    got = student.run(estimate_loss_probe, state, tokens, T, batch_size, n_windows, tuple_output)
    want = reference.run(estimate_loss_probe, state, tokens, T, batch_size, n_windows, False)
    assert_close(got[0], want[0], atol=1e-5, rtol=1e-5, what=f"estimate_loss with n_windows={n_windows}")
    assert_equal(got[1], [True] * len(got[1]), what="parameters without .grad after estimate_loss (no_grad)")


# ---------------------------------------------------------------- train

@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_train_learns_in_low_precision(student, precision):
    V = 16
    train_tokens, val_tokens = markov_tokens(V, 3000, 5), markov_tokens(V, 300, 6)
    state = fresh_state(V, 16, 3)
    got = student.run(train_probe, state, train_tokens, val_tokens, dict(CONFIG, precision=precision), [])
    final = loss_on_all_windows(got["params"], val_tokens, 8)
    if not final < 0.5 * math.log(V):
        raise Mismatch(f"train with precision={precision}: validation loss {final:.3f} is not below half of ln V")
    ckpt = torch.load(io.BytesIO(got["file"]), weights_only=True)
    assert_equal(ckpt["iteration"], 120, what=f"the iteration in the final checkpoint ({precision})")


def test_train_checkpoints_every_interval(student):
    V = 16
    config = dict(CONFIG, max_iters=30, cosine_iters=30, checkpoint_interval=10, eval_interval=10)
    got = student.run(train_probe, fresh_state(V, 16, 0), markov_tokens(V, 800, 0), markov_tokens(V, 100, 1),
                      config, [4, 14, 24])
    assert_equal(got["seen"], {4: None, 14: 10, 24: 20},
                 what="the iteration of the checkpoint on disk after steps 5, 15 and 25 (checkpoint_interval=10)")
    assert_equal(torch.load(io.BytesIO(got["file"]), weights_only=True)["iteration"], 30,
                 what="the iteration of the checkpoint after the last step")
    speeds = [r["tokens_per_s"] for r in got["history"]]
    if not all(isinstance(s, float) and s > 0 for s in speeds):
        raise Mismatch("history's tokens_per_s must be positive floats")


def test_train_decays_matrices_only(student):
    V = 16
    config = dict(CONFIG, max_iters=3, cosine_iters=3, warmup_iters=1)
    got = student.run(train_probe, fresh_state(V, 16, 0), markov_tokens(V, 300, 0), markov_tokens(V, 100, 1),
                      config, [])
    opt = torch.load(io.BytesIO(got["file"]), weights_only=True)["optimizer"]
    dims = {}
    for group in opt["param_groups"]:
        for i in group["params"]:
            dims[i] = (opt["state"][i]["exp_avg"].dim(), group["weight_decay"])
    want = sorted([(2, 0.1), (2, 0.1), (1, 0.0)])
    assert_equal(sorted(dims.values()), want,
                 what="(parameter dims, weight_decay) of the optimizer's groups in train's checkpoint",
                 hint="weight decay on matrices (dim >= 2) only; biases and gains get 0.0")

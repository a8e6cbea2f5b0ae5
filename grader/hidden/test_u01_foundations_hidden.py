"""Hidden tests for unit u01, foundations: never shipped to students.

Stronger than the public tests: shapes drawn per case, deeper networks that
mix activations, layers that must not write into their inputs, the exact
value gradient_check reports for a known bug, numerical_gradient on a
non-contiguous array and with a large h, SGD under a changing learning rate,
a last batch smaller than the rest, and a second data set (two rings) learnt
from several seeds. Probes repeat the public file's small helpers: a probe
ships with helpers from its own file only.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.testing import assert_close, assert_equal

pytestmark = pytest.mark.u01

ACTIVATIONS = {"ReLU": torch.relu, "Tanh": torch.tanh, "Sigmoid": torch.sigmoid}
TIGHT = dict(atol=1e-11, rtol=1e-9)


# ---------------------------------------------------------------- probes

def set_linear(layer, W, b):
    if tuple(layer.W.shape) != W.shape or tuple(layer.b.shape) != b.shape:
        raise ValueError(f"Linear has W {tuple(layer.W.shape)} and b {tuple(layer.b.shape)}; "
                         f"expected W {W.shape} and b {b.shape}")
    layer.W[...] = W
    layer.b[...] = b
    return layer


def build_mlp(pkg, params, activations):
    """Linear layers with the given [(W, b), ...], activations[i] after Linear i."""
    ag = pkg.autograd
    rng = np.random.default_rng(0)
    layers = []
    for i, (W, b) in enumerate(params):
        if i > 0:
            layers.append(getattr(ag, activations[i - 1])())
        layers.append(set_linear(ag.Linear(W.shape[0], W.shape[1], rng), W, b))
    return ag.Sequential(*layers)


def linear_init_probe(pkg, n_in, n_out, seed):
    lin = pkg.autograd.Linear(n_in, n_out, np.random.default_rng(seed))
    return {"W": lin.W, "b": lin.b}


def mlp_probe(pkg, params, activations, x, grad_out):
    model = build_mlp(pkg, params, activations)
    x_before = x.copy()
    out = model.forward(x)
    dx = model.backward(grad_out)
    return {"out": out, "dx": dx, "grads": [[layer.dW, layer.db] for layer in model.layers[::2]],
            "x unchanged": bool(np.array_equal(x, x_before))}


def activation_keeps_input_probe(pkg, name, x, grad_out):
    act = getattr(pkg.autograd, name)()
    x_before = x.copy()
    out = act.forward(x)
    dx = act.backward(grad_out)
    return out, dx, bool(np.array_equal(x, x_before))


def softmax_ce_probe(pkg, logits, labels):
    with np.errstate(over="raise"):
        loss, dlogits = pkg.autograd.softmax_cross_entropy(logits, labels)
    return float(loss), dlogits


def sgd_schedule_probe(pkg, values, grads_per_step, lrs, momentum):
    params = [(v.copy(), np.zeros_like(v)) for v in values]
    opt = pkg.autograd.SGD(params, lr=lrs[0], momentum=momentum)
    trajectory = []
    for lr, grads in zip(lrs, grads_per_step):
        opt.lr = lr
        for (_, g), new in zip(params, grads):
            g[...] = new
        opt.step()
        trajectory.append([p.copy() for p, _ in params])
    return trajectory


def cubes(x):
    return float(np.sum(x ** 3))


def wavy(x):
    return float(np.sum(np.sin(x) * x ** 2) + x.flat[0] * x.flat[-1])


def numerical_gradient_probe(pkg, x, h, function, transpose):
    """numerical_gradient on x, or on x.T: a view that is not contiguous in memory."""
    f = {"cubes": cubes, "wavy": wavy}[function]
    if transpose:
        x = x.T
    before = x.copy()
    grad = pkg.autograd.numerical_gradient(f, x, h)
    return np.asarray(grad, dtype=np.float64), bool(np.array_equal(x, before))


def gradient_check_probe(pkg, params, activations, x, labels, corrupt):
    """gradient_check with one bug planted: dx doubled, or one layer's dW or db shifted."""
    ag = pkg.autograd
    model = build_mlp(pkg, params, activations)
    linears = model.layers[::2]
    kind, index = corrupt
    layer = linears[index]
    original = layer.backward

    def doubled_dx(grad_out):
        return 2.0 * original(grad_out)

    def shifted(grad_out):
        dx = original(grad_out)
        if kind == "dW":
            layer.dW += 0.25
        else:
            layer.db -= 0.25
        return dx

    if kind != "none":
        layer.backward = doubled_dx if kind == "dx" else shifted
    return float(ag.gradient_check(model, x, labels))


def train_fixed_probe(pkg, params, X, y, epochs, lr, momentum, batch_size):
    model = build_mlp(pkg, params, ["Tanh"] * (len(params) - 1))
    history = pkg.autograd.train_classifier(model, X, y, np.random.default_rng(0), epochs=epochs, lr=lr,
                                            momentum=momentum, batch_size=batch_size)
    return [float(a) for a in history], [[layer.W, layer.b] for layer in model.layers[::2]]


def train_probe(pkg, sizes, X, y, seed, epochs, lr, momentum, batch_size):
    ag = pkg.autograd
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(len(sizes) - 1):
        if i > 0:
            layers.append(ag.ReLU())
        layers.append(ag.Linear(sizes[i], sizes[i + 1], rng))
    history = ag.train_classifier(ag.Sequential(*layers), X, y, rng, epochs=epochs, lr=lr, momentum=momentum,
                                  batch_size=batch_size)
    return [float(a) for a in history], [[layer.W, layer.b] for layer in layers[::2]]


# ---------------------------------------------------------------- helpers

def randn(rng, *shape):
    return torch.randn(*shape, generator=rng, dtype=torch.float64).numpy()


def randint(rng, lo, hi):
    return int(torch.randint(lo, hi + 1, (1,), generator=rng))


def random_params(rng, sizes):
    return [(randn(rng, a, b) / np.sqrt(a), 0.1 * randn(rng, b)) for a, b in zip(sizes, sizes[1:])]


def leaves(arrays):
    return [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]


def torch_mlp(params, activations, x):
    for i, (W, b) in enumerate(params):
        if i > 0:
            x = ACTIVATIONS[activations[i - 1]](x)
        x = F.linear(x, W.T, b)
    return x


def torch_accuracy(params, X, y):
    logits = torch_mlp([(torch.from_numpy(W), torch.from_numpy(b)) for W, b in params],
                       ["ReLU"] * (len(params) - 1), torch.from_numpy(X))
    return float((logits.argmax(dim=1) == torch.from_numpy(y)).double().mean())


def rings(n, seed):
    """Two concentric rings: label 0 inside radius 0.5, label 1 between 0.7 and 1."""
    g = np.random.default_rng(seed)
    y = g.integers(0, 2, n)
    r = np.where(y == 0, g.uniform(0.0, 0.5, n), g.uniform(0.7, 1.0, n))
    a = g.uniform(0, 2 * np.pi, n)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1), y


def away_from_the_kink(rng, params, n, n_in, margin=1e-2):
    """n inputs whose pre-activations in a ReLU network are all at least `margin` from 0."""
    rows = []
    while len(rows) < n:
        x = torch.from_numpy(randn(rng, 1, n_in))
        z, ok = x, True
        for W, b in params[:-1]:
            z = F.linear(z, torch.from_numpy(W).T, torch.from_numpy(b))
            ok = ok and bool((z.abs() > margin).all())
            z = torch.relu(z)
        if ok:
            rows.append(x.numpy()[0])
    return np.stack(rows)


# ---------------------------------------------------------------- layers

@pytest.mark.parametrize("n_in, n_out", [(2000, 60), (60, 2000), (7, 20000)])
def test_linear_init_std_at_other_sizes(student, n_in, n_out):
    got = student.run(linear_init_probe, n_in, n_out, 3)
    std = np.sqrt(2 / n_in)
    assert_close(float(got["W"].std()), float(std), atol=0, rtol=0.05, what=f"std of W in Linear({n_in}, {n_out})")
    assert_close(float(got["W"].mean()), 0.0, atol=0.05 * std, rtol=0, what=f"mean of W in Linear({n_in}, {n_out})")
    assert_close(got["b"], np.zeros(n_out), atol=0, rtol=0, what=f"b of Linear({n_in}, {n_out})")


@pytest.mark.parametrize("case", range(6))
def test_deep_mixed_networks_match_autograd(student, rng, case):
    depth = randint(rng, 1, 5)
    sizes = [randint(rng, 1, 9) for _ in range(depth + 1)]
    activations = [["ReLU", "Tanh", "Sigmoid"][randint(rng, 0, 2)] for _ in range(depth - 1)]
    params = random_params(rng, sizes)
    N = randint(rng, 1, 7)
    x, grad_out = 2 * randn(rng, N, sizes[0]), randn(rng, N, sizes[-1])
    got = student.run(mlp_probe, params, activations, x, grad_out)
    tparams = [leaves(p) for p in params]
    x_ = leaves([x])[0]
    out = torch_mlp(tparams, activations, x_)
    out.backward(torch.from_numpy(grad_out))
    what = f"network {sizes} with {activations}, batch {N}"
    assert_close(got["out"], out.detach(), **TIGHT, what=f"forward of {what}")
    assert_close(got["dx"], x_.grad, **TIGHT, what=f"dL/dx of {what}")
    assert_close(got["grads"], [[W.grad, b.grad] for W, b in tparams], **TIGHT, what=f"[dW, db] of {what}")
    assert_equal(got["x unchanged"], True, what=f"the input x after forward and backward of {what}")


@pytest.mark.parametrize("name", ["ReLU", "Tanh", "Sigmoid"])
def test_activations_on_3d_arrays_leave_their_input_alone(student, rng, name):
    x, grad_out = 2 * randn(rng, 2, 3, 4), randn(rng, 2, 3, 4)
    x[0, 0, :2] = 0.0
    out, dx, unchanged = student.run(activation_keeps_input_probe, name, x, grad_out)
    x_ = leaves([x])[0]
    y = ACTIVATIONS[name](x_)
    y.backward(torch.from_numpy(grad_out))
    assert_close(out, y.detach(), **TIGHT, what=f"{name}.forward on shape (2, 3, 4)")
    assert_close(dx, x_.grad, **TIGHT, what=f"{name}.backward on shape (2, 3, 4)")
    assert_equal(unchanged, True, what=f"the array given to {name}.forward, afterwards")


# ---------------------------------------------------------------- loss

@pytest.mark.parametrize("case", range(5))
def test_softmax_cross_entropy_random_shapes_and_scales(student, rng, case):
    N, C = randint(rng, 1, 12), randint(rng, 1, 9)
    scale = [0.1, 1.0, 30.0, 1e3, 1e6][case]
    logits = scale * randn(rng, N, C) - scale
    labels = torch.randint(0, C, (N,), generator=rng).numpy().astype([np.int64, np.int32][case % 2])
    loss, dlogits = student.run(softmax_ce_probe, logits, labels)
    z = leaves([logits])[0]
    want = F.cross_entropy(z, torch.from_numpy(labels.astype(np.int64)))
    want.backward()
    assert_close(loss, want.item(), atol=1e-9, rtol=1e-10, what=f"loss for logits ({N}, {C}) of scale {scale:g}")
    assert_close(dlogits, z.grad, **TIGHT, what=f"dL/dlogits for logits ({N}, {C}) of scale {scale:g}")


# ---------------------------------------------------------------- SGD

@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.99])
def test_sgd_with_a_changing_learning_rate(student, rng, momentum):
    values = [randn(rng, 4, 3), randn(rng, 3), randn(rng, 2, 2)]
    grads_per_step = [[randn(rng, *v.shape) for v in values] for _ in range(6)]
    lrs = [0.2, 0.1, 0.05, 0.3, 0.01, 0.15]
    got = student.run(sgd_schedule_probe, values, grads_per_step, lrs, momentum)
    ps = leaves(values)
    opt = torch.optim.SGD(ps, lr=lrs[0], momentum=momentum)
    want = []
    for lr, grads in zip(lrs, grads_per_step):
        opt.param_groups[0]["lr"] = lr
        for p, g in zip(ps, grads):
            p.grad = torch.from_numpy(g).clone()
        opt.step()
        want.append([p.detach().clone() for p in ps])
    assert_close(got, want, **TIGHT, what=f"parameters after 6 steps with lr changed every step, momentum={momentum}")


# ---------------------------------------------------------------- gradient checking

@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4)])
def test_numerical_gradient_on_a_non_contiguous_array(student, rng, shape):
    base = randn(rng, *shape)
    grad, restored = student.run(numerical_gradient_probe, base, 1e-4, "wavy", True)
    x_ = leaves([base.T.copy()])[0]
    flat = x_.reshape(-1)
    (torch.sum(torch.sin(x_) * x_ ** 2) + flat[0] * flat[-1]).backward()
    assert_close(grad, x_.grad, atol=1e-6, rtol=1e-6, what=f"numerical_gradient on x.T for x of shape {shape}")
    assert_equal(restored, True, what="a non-contiguous x after numerical_gradient")


def test_numerical_gradient_uses_the_h_it_is_given(student, rng):
    x = randn(rng, 4, 3)
    h = 0.1
    grad, restored = student.run(numerical_gradient_probe, x, h, "cubes", False)
    # ((x + h)^3 - (x - h)^3) / 2h = 3x^2 + h^2 exactly: the O(h^2) error, visible at this h.
    assert_close(grad, 3 * x ** 2 + h ** 2, atol=1e-9, rtol=1e-9, what=f"numerical_gradient of sum(x^3) with h={h}")
    assert_equal(restored, True, what="x after numerical_gradient with h=0.1")


@pytest.mark.parametrize("activations", [["ReLU", "ReLU"], ["Sigmoid", "Tanh"]])
def test_gradient_check_passes_deeper_correct_networks(student, rng, activations):
    params = random_params(rng, [5, 7, 6, 4])
    x = away_from_the_kink(rng, params, 8, 5) if activations[0] == "ReLU" else randn(rng, 8, 5)
    labels = torch.randint(0, 4, (8,), generator=rng).numpy()
    error = student.run(gradient_check_probe, params, activations, x, labels, ("none", 0))
    assert error < 1e-6, f"gradient_check on a correct network with {activations} reported {error:.3g}"


def test_gradient_check_reports_the_relative_error_of_a_doubled_input_gradient(student, rng):
    params = random_params(rng, [3, 6, 3])
    x = randn(rng, 5, 3)
    labels = torch.randint(0, 3, (5,), generator=rng).numpy()
    error = student.run(gradient_check_probe, params, ["Tanh"], x, labels, ("dx", 0))
    # |2g - g| / (|2g| + |g|) = 1/3, and every other array agrees to ~1e-9.
    assert_close(error, 1 / 3, atol=1e-6, rtol=0, what="gradient_check when dL/dx is doubled (expected 1/3)")


@pytest.mark.parametrize("corrupt", [("dW", 1), ("db", 1), ("db", 0), ("dW", 2)])
def test_gradient_check_catches_any_wrong_parameter(student, rng, corrupt):
    params = random_params(rng, [4, 5, 5, 3])
    x = randn(rng, 6, 4)
    labels = torch.randint(0, 3, (6,), generator=rng).numpy()
    error = student.run(gradient_check_probe, params, ["Tanh", "Sigmoid"], x, labels, corrupt)
    assert error > 0.05, f"gradient_check reported {error:.3g} with {corrupt[0]} of Linear {corrupt[1]} shifted by 0.25"


# ---------------------------------------------------------------- training

def test_train_classifier_keeps_the_last_small_batch(student, rng):
    """40 examples, batch_size 64: one batch of all 40 per epoch, as full-batch SGD."""
    params = random_params(rng, [2, 6, 2])
    X = randn(rng, 40, 2)
    y = torch.randint(0, 2, (40,), generator=rng).numpy()
    history, got = student.run(train_fixed_probe, params, X, y, 4, 0.5, 0.5, 64)
    tparams = [leaves(p) for p in params]
    opt = torch.optim.SGD([t for p in tparams for t in p], lr=0.5, momentum=0.5)
    for _ in range(4):
        opt.zero_grad()
        F.cross_entropy(torch_mlp(tparams, ["Tanh"], torch.from_numpy(X)), torch.from_numpy(y)).backward()
        opt.step()
    assert_close(got, [[W.detach(), b.detach()] for W, b in tparams], atol=1e-10, rtol=1e-8,
                 what="[W, b] after 4 epochs of 40 examples with batch_size=64")
    assert_equal(len(history), 4, what="len(history) after 4 epochs")


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_mlp_learns_two_rings_from_any_seed(student, seed):
    X, y = rings(300, seed=100 + seed)
    X_test, y_test = rings(2000, seed=200 + seed)
    history, params = student.run(train_probe, [2, 16, 2], X, y, seed, 100, 0.05, 0.9, 20)
    assert_close(history[-1], torch_accuracy(params, X, y), atol=1e-12, rtol=0,
                 what="history[-1] against the training accuracy of the returned weights")
    held_out = torch_accuracy(params, X_test, y_test)
    assert held_out >= 0.95, f"Linear(2, 16), ReLU, Linear(16, 2) classified {held_out:.1%} of two held-out rings"

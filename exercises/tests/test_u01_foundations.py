"""Public tests for unit u01, foundations: backpropagation by hand.

Your module is numpy only, so numpy arrays (float64) and numbers are all
that cross between your code and these tests. Each test builds inputs here,
runs a probe against your package with `student.run`, and compares with
torch computed here: torch's autograd (in float64) for every gradient,
F.cross_entropy for the loss, torch.optim.SGD for the optimizer. The network
that learns is scored here too: your training returns its weights, and the
test runs them on points your code never saw. Run them with
`llmfs check u01` or `pytest exercises/tests -m u01`.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.testing import assert_close, assert_equal

pytestmark = pytest.mark.u01

ACTIVATIONS = {"ReLU": torch.relu, "Tanh": torch.tanh, "Sigmoid": torch.sigmoid}


# ---------------------------------------------------------------- probes
# Probes run beside your code (in another process under `llmfs grade`):
# they take your package first and return plain data.

def set_linear(layer, W, b):
    """Copy W (in, out) and b (out,) into a Linear, in place."""
    if tuple(layer.W.shape) != W.shape or tuple(layer.b.shape) != b.shape:
        raise ValueError(f"Linear has W {tuple(layer.W.shape)} and b {tuple(layer.b.shape)}; "
                         f"expected W {W.shape} (in_features, out_features) and b {b.shape}")
    layer.W[...] = W
    layer.b[...] = b
    return layer


def build_mlp(pkg, params, activation):
    """Sequential(Linear, act, Linear, act, ..., Linear) with the given [(W, b), ...]."""
    ag = pkg.autograd
    rng = np.random.default_rng(0)
    layers = []
    for i, (W, b) in enumerate(params):
        if i > 0:
            layers.append(getattr(ag, activation)())
        layers.append(set_linear(ag.Linear(W.shape[0], W.shape[1], rng), W, b))
    return ag.Sequential(*layers)


def linear_init_probe(pkg, n_in, n_out, seed):
    lin = pkg.autograd.Linear(n_in, n_out, np.random.default_rng(seed))
    return {"W": lin.W, "b": lin.b, "dW": lin.dW, "db": lin.db}


def linear_probe(pkg, W, b, x, grad_out):
    lin = set_linear(pkg.autograd.Linear(W.shape[0], W.shape[1], np.random.default_rng(0)), W, b)
    out = lin.forward(x)
    dx = lin.backward(grad_out)
    return {"out": out, "dx": dx, "dW": lin.dW, "db": lin.db}


def linear_twice_probe(pkg, W, b, xs, grad_outs):
    """Forward/backward once per (x, grad_out) without zero_grad; then zero_grad."""
    lin = set_linear(pkg.autograd.Linear(W.shape[0], W.shape[1], np.random.default_rng(0)), W, b)
    for x, g in zip(xs, grad_outs):
        lin.forward(x)
        lin.backward(g)
    summed = {"dW": lin.dW.copy(), "db": lin.db.copy()}
    lin.zero_grad()
    return summed, {"dW": lin.dW, "db": lin.db}


def latest_forward_probe(pkg, W, b, x_old, x_new, grad_out):
    """Two forwards, then one backward: it belongs to the latest forward."""
    lin = set_linear(pkg.autograd.Linear(W.shape[0], W.shape[1], np.random.default_rng(0)), W, b)
    lin.forward(x_old)
    lin.forward(x_new)
    dx = lin.backward(grad_out)
    return {"dx": dx, "dW": lin.dW, "db": lin.db}


def two_layers_interleaved_probe(pkg, params, xs, grad_outs):
    """Two Linear layers of the same shape: forward both, then backward both."""
    rng = np.random.default_rng(0)
    layers = [set_linear(pkg.autograd.Linear(W.shape[0], W.shape[1], rng), W, b) for W, b in params]
    for layer, x in zip(layers, xs):
        layer.forward(x)
    dxs = [layer.backward(g) for layer, g in zip(layers, grad_outs)]
    return [{"dx": dx, "dW": layer.dW, "db": layer.db} for dx, layer in zip(dxs, layers)]


def activation_probe(pkg, name, x, grad_out):
    act = getattr(pkg.autograd, name)()
    with np.errstate(over="raise"):  # an overflow in exp() is an error here
        out = act.forward(x)
        return out, act.backward(grad_out)


def mlp_probe(pkg, params, activation, x, grad_out):
    model = build_mlp(pkg, params, activation)
    out = model.forward(x)
    dx = model.backward(grad_out)
    return {"out": out, "dx": dx, "grads": [[layer.dW, layer.db] for layer in model.layers[::2]]}


def parameters_probe(pkg):
    """Which arrays Sequential.parameters() hands out: the layers' own, in layer order?"""
    ag = pkg.autograd
    rng = np.random.default_rng(0)
    first, second = ag.Linear(3, 4, rng), ag.Linear(4, 2, rng)
    pairs = ag.Sequential(first, ag.ReLU(), second).parameters()
    want = [(first.W, first.dW), (first.b, first.db), (second.W, second.dW), (second.b, second.db)]
    return [[p is wp, g is wg] for (p, g), (wp, wg) in zip(pairs, want)] + [len(pairs)]


def softmax_ce_probe(pkg, logits, labels):
    with np.errstate(over="raise"):  # an overflow in exp() is an error here
        loss, dlogits = pkg.autograd.softmax_cross_entropy(logits, labels)
    return float(loss), dlogits


def sgd_probe(pkg, values, grads_per_step, lr, momentum):
    """Run SGD on arrays whose gradients are set by hand before each step."""
    params = [(v.copy(), np.zeros_like(v)) for v in values]
    opt = pkg.autograd.SGD(params, lr=lr, momentum=momentum)
    trajectory = []
    for grads in grads_per_step:
        for (_, g), new in zip(params, grads):
            g[...] = new
        opt.step()
        trajectory.append([p.copy() for p, _ in params])
    opt.zero_grad()
    return trajectory, [g for _, g in params]


def sgd_on_model_probe(pkg, params, x, labels, lr, momentum, steps):
    """A few training steps on a Tanh MLP: SGD over model.parameters(), zeroed by model.zero_grad()."""
    ag = pkg.autograd
    model = build_mlp(pkg, params, "Tanh")
    opt = ag.SGD(model.parameters(), lr=lr, momentum=momentum)
    for _ in range(steps):
        model.zero_grad()
        _, dlogits = ag.softmax_cross_entropy(model.forward(x), labels)
        model.backward(dlogits)
        opt.step()
    return [[layer.W, layer.b] for layer in model.layers[::2]]


def wavy(x):
    """A test function of a whole array: sum(sin(x) x^2) + x_first x_last."""
    return float(np.sum(np.sin(x) * x ** 2) + x.flat[0] * x.flat[-1])


def numerical_gradient_probe(pkg, x, h):
    grad = pkg.autograd.numerical_gradient(wavy, x, h)
    return grad, x


def relative_error_probe(pkg, a, b):
    return float(pkg.autograd.relative_error(a, b))


def gradient_check_probe(pkg, params, x, labels, corrupt):
    """gradient_check on a Tanh MLP; `corrupt` plants a bug in one of its gradients.

    The model already holds gradients from an earlier backward, as it would in training.
    """
    ag = pkg.autograd
    model = build_mlp(pkg, params, "Tanh")
    first, last = model.layers[0], model.layers[-1]
    first_backward, last_backward = first.backward, last.backward

    def doubled_dx(grad_out):
        return 2.0 * first_backward(grad_out)

    def shifted_db(grad_out):
        dx = last_backward(grad_out)
        last.db += 0.5
        return dx

    def scaled_first_dW(grad_out):
        dx = first_backward(grad_out)
        first.dW *= 1.5
        return dx

    planted = {"none": None, "dx": doubled_dx, "last db": shifted_db, "first dW": scaled_first_dW}[corrupt]
    if planted is not None:
        (first if corrupt != "last db" else last).backward = planted
    _, dlogits = ag.softmax_cross_entropy(model.forward(x), labels)
    model.backward(dlogits)  # stale gradients: gradient_check must start from zero
    error = float(ag.gradient_check(model, x, labels))
    return error, [[layer.W, layer.b] for layer in model.layers[::2]], x


def accuracy_probe(pkg, params, X, y):
    return float(pkg.autograd.accuracy(build_mlp(pkg, params, "ReLU"), X, y))


def train_full_batch_probe(pkg, params, X, y, epochs, lr, momentum):
    """train_classifier with one batch holding every example: plain full-batch SGD steps."""
    model = build_mlp(pkg, params, "Tanh")
    history = pkg.autograd.train_classifier(model, X, y, np.random.default_rng(0), epochs=epochs, lr=lr,
                                            momentum=momentum, batch_size=len(X))
    return [float(a) for a in history], [[layer.W, layer.b] for layer in model.layers[::2]]


def train_probe(pkg, sizes, X, y, seed, epochs, lr, momentum, batch_size):
    """Build Sequential(Linear, ReLU, ..., Linear) with your init, train it, return history and weights."""
    ag = pkg.autograd
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(len(sizes) - 1):
        if i > 0:
            layers.append(ag.ReLU())
        layers.append(ag.Linear(sizes[i], sizes[i + 1], rng))
    model = ag.Sequential(*layers)
    history = ag.train_classifier(model, X, y, rng, epochs=epochs, lr=lr, momentum=momentum,
                                  batch_size=batch_size)
    return [float(a) for a in history], [[layer.W, layer.b] for layer in model.layers[::2]]


# ---------------------------------------------------------------- helpers

def randn(rng, *shape):
    """float64 numpy array of N(0, 1) draws from the test's torch.Generator."""
    return torch.randn(*shape, generator=rng, dtype=torch.float64).numpy()


def random_params(rng, sizes):
    return [(randn(rng, a, b) / np.sqrt(a), 0.1 * randn(rng, b)) for a, b in zip(sizes, sizes[1:])]


def leaves(arrays):
    return [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]


def torch_mlp(params, activation, x):
    """The oracle network: F.linear with W transposed (ours is (in, out)), torch activations."""
    for i, (W, b) in enumerate(params):
        if i > 0:
            x = ACTIVATIONS[activation](x)
        x = F.linear(x, W.T, b)
    return x


def two_spirals(n, seed, turns=1.5, noise=0.02):  # llmfs: not an oracle (builds a seeded data set)
    """n points on two interleaved spirals in the plane, labels 0 and 1."""
    g = np.random.default_rng(seed)
    r = np.sqrt(g.uniform(0.02, 1.0, n))
    y = g.integers(0, 2, n)
    angle = r * turns * 2 * np.pi + np.pi * y
    X = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1) + noise * g.normal(size=(n, 2))
    return X, y


def torch_accuracy(params, X, y):
    logits = torch_mlp([(torch.from_numpy(W), torch.from_numpy(b)) for W, b in params], "ReLU",
                       torch.from_numpy(X))
    return float((logits.argmax(dim=1) == torch.from_numpy(y)).double().mean())


# ---------------------------------------------------------------- Linear

def test_linear_init_shapes_and_zeros(student):
    got = student.run(linear_init_probe, 5, 3, 0)
    assert_equal({k: tuple(v.shape) for k, v in got.items()}, {"W": (5, 3), "b": (3,), "dW": (5, 3), "db": (3,)},
                 what="shapes of Linear(5, 3): W, b, dW, db",
                 hint="W is (in_features, out_features) so that forward is x @ W + b")
    assert_equal({k: str(v.dtype) for k, v in got.items()}, {k: "float64" for k in got}, what="dtypes of W, b, dW, db")
    assert_close({k: got[k] for k in ("b", "dW", "db")},
                 {"b": np.zeros(3), "dW": np.zeros((5, 3)), "db": np.zeros(3)}, atol=0, rtol=0,
                 what="b, dW and db of a new Linear", hint="the bias and both gradients start at zero")


def test_linear_init_is_he_normal_drawn_from_rng(student):
    n_in, n_out = 300, 400
    W = student.run(linear_init_probe, n_in, n_out, 1)["W"]
    again = student.run(linear_init_probe, n_in, n_out, 1)["W"]
    other = student.run(linear_init_probe, n_in, n_out, 2)["W"]
    assert_close(again, W, atol=0, rtol=0, what="W of Linear(300, 400) built twice from rng seeded 1",
                 hint="draw W from the rng you are given, not from np.random")
    assert not np.array_equal(W, other), "Linear(300, 400) gave the same W for rngs seeded 1 and 2; draw W from rng"
    # 120,000 independent draws: the sample std is within 0.2% of the true one
    # (one standard error), the mean within 0.003 std, the kurtosis within 0.014;
    # the margins below are 10 standard errors or more.
    std, mean = float(W.std()), float(W.mean())
    assert_close(std, float(np.sqrt(2 / n_in)), atol=0, rtol=0.05, what="std of W in Linear(300, 400)",
                 hint="He init: N(0, 2 / in_features), a standard deviation of sqrt(2 / in_features)")
    assert_close(mean, 0.0, atol=0.03 * np.sqrt(2 / n_in), rtol=0, what="mean of W in Linear(300, 400)")
    fourth = float(np.mean((W / std) ** 4))  # 3 for a normal distribution, 1.8 for a uniform one
    assert_close(fourth, 3.0, atol=0.15, rtol=0, what="kurtosis of W (normal: 3, uniform: 1.8)",
                 hint="draw from a normal distribution (rng.normal), not a uniform one")


@pytest.mark.parametrize("shape", [(4, 3, 5), (1, 6, 2), (7, 2, 2)], ids=["N4-in3-out5", "N1", "square"])
def test_linear_forward_and_backward_match_autograd(student, rng, shape):
    N, n_in, n_out = shape
    W, b, x, grad_out = randn(rng, n_in, n_out), randn(rng, n_out), randn(rng, N, n_in), randn(rng, N, n_out)
    got = student.run(linear_probe, W, b, x, grad_out)
    W_, b_, x_ = leaves([W, b, x])
    out = F.linear(x_, W_.T, b_)
    out.backward(torch.from_numpy(grad_out))
    want = {"out": out.detach(), "dx": x_.grad, "dW": W_.grad, "db": b_.grad}
    hints = {"out": "forward is x @ W + b with W of shape (in, out)",
             "dx": "dL/dx = grad_out @ W.T",
             "dW": "dL/dW = x.T @ grad_out: (in, N) @ (N, out), a sum over the batch",
             "db": "dL/db sums grad_out over the batch axis (axis 0)"}
    for k in want:
        assert_close(got[k], want[k], atol=1e-12, rtol=1e-10,
                     what=f"Linear({n_in}, {n_out}) {k} for x {x.shape}", hint=hints[k])


def test_linear_gradients_accumulate_until_zero_grad(student, rng):
    W, b = randn(rng, 3, 4), randn(rng, 4)
    xs, grad_outs = [randn(rng, 5, 3), randn(rng, 2, 3)], [randn(rng, 5, 4), randn(rng, 2, 4)]
    summed, zeroed = student.run(linear_twice_probe, W, b, xs, grad_outs)
    W_, b_ = leaves([W, b])
    for x, g in zip(xs, grad_outs):  # torch adds into .grad on every backward, too
        F.linear(torch.from_numpy(x), W_.T, b_).backward(torch.from_numpy(g))
    assert_close(summed, {"dW": W_.grad, "db": b_.grad}, atol=1e-12, rtol=1e-10,
                 what="dW and db after two forward/backward calls without zero_grad",
                 hint="backward adds into dW and db (+=); it does not overwrite them")
    assert_close(zeroed, {"dW": np.zeros((3, 4)), "db": np.zeros(4)}, atol=0, rtol=0,
                 what="dW and db after zero_grad()")


def test_linear_backward_uses_the_latest_forward(student, rng):
    W, b = randn(rng, 3, 2), randn(rng, 2)
    x_old, x_new, grad_out = randn(rng, 4, 3), randn(rng, 4, 3), randn(rng, 4, 2)
    got = student.run(latest_forward_probe, W, b, x_old, x_new, grad_out)
    W_, b_, x_ = leaves([W, b, x_new])
    F.linear(x_, W_.T, b_).backward(torch.from_numpy(grad_out))
    assert_close(got, {"dx": x_.grad, "dW": W_.grad, "db": b_.grad}, atol=1e-12, rtol=1e-10,
                 what="backward after forward(x_old), forward(x_new)",
                 hint="each forward replaces the remembered input; backward uses the latest one")


def test_two_linear_layers_remember_their_own_inputs(student, rng):
    params = random_params(rng, [3, 4]) + random_params(rng, [3, 4])
    xs, grad_outs = [randn(rng, 5, 3), randn(rng, 5, 3)], [randn(rng, 5, 4), randn(rng, 5, 4)]
    got = student.run(two_layers_interleaved_probe, params, xs, grad_outs)
    for i, ((W, b), x, g) in enumerate(zip(params, xs, grad_outs)):
        W_, b_, x_ = leaves([W, b, x])
        F.linear(x_, W_.T, b_).backward(torch.from_numpy(g))
        assert_close(got[i], {"dx": x_.grad, "dW": W_.grad, "db": b_.grad}, atol=1e-12, rtol=1e-10,
                     what=f"gradients of layer {i} of two Linear(3, 4) run forward, forward, backward, backward",
                     hint="keep the input in the instance (self.x = x), never in a class attribute or a global")


# ---------------------------------------------------------------- activations

@pytest.mark.parametrize("name", ["ReLU", "Tanh", "Sigmoid"])
def test_activation_forward_and_backward_match_autograd(student, rng, name):
    x = 3 * randn(rng, 4, 6)
    grad_out = randn(rng, 4, 6)
    out, dx = student.run(activation_probe, name, x, grad_out)
    x_ = leaves([x])[0]
    y = ACTIVATIONS[name](x_)
    y.backward(torch.from_numpy(grad_out))
    derivative = {"ReLU": "1 where x > 0, else 0", "Tanh": "1 - tanh(x)^2", "Sigmoid": "s (1 - s)"}[name]
    assert_close(out, y.detach(), atol=1e-12, rtol=1e-10, what=f"{name}.forward(x {x.shape})")
    assert_close(dx, x_.grad, atol=1e-12, rtol=1e-10, what=f"{name}.backward for x {x.shape}",
                 hint=f"multiply grad_out elementwise by the derivative, {derivative}")


def test_relu_gradient_at_zero_is_zero(student, rng):
    x = np.array([[-2.0, 0.0, 3.0, 0.0], [0.0, -0.0, 1e-300, -1e-300]])
    grad_out = randn(rng, 2, 4)
    out, dx = student.run(activation_probe, "ReLU", x, grad_out)
    x_ = leaves([x])[0]
    torch.relu(x_).backward(torch.from_numpy(grad_out))
    assert_close(out, torch.relu(x_).detach(), atol=0, rtol=0, what="ReLU.forward at and around 0")
    assert_close(dx, x_.grad, atol=0, rtol=0, what="ReLU.backward where the input is exactly 0",
                 hint="the derivative at 0 is 0 (as in torch): pass the gradient only where x > 0")


def test_sigmoid_and_tanh_saturate_without_overflow(student, rng):
    x = np.array([[-800.0, -40.0, 0.0, 40.0, 800.0]])
    grad_out = np.ones_like(x)
    for name in ("Sigmoid", "Tanh"):
        out, dx = student.run(activation_probe, name, x, grad_out)
        x_ = leaves([x])[0]
        y = ACTIVATIONS[name](x_)
        y.backward(torch.from_numpy(grad_out))
        assert_close(out, y.detach(), atol=1e-12, rtol=1e-10, what=f"{name}.forward at |x| up to 800",
                     hint="sigmoid: use exp(-|x|), which never overflows")
        assert_close(dx, x_.grad, atol=1e-12, rtol=1e-10, what=f"{name}.backward at |x| up to 800")


# ---------------------------------------------------------------- Sequential

@pytest.mark.parametrize("activation", ["ReLU", "Tanh", "Sigmoid"])
def test_mlp_forward_and_backward_match_autograd(student, rng, activation):
    params = random_params(rng, [3, 5, 4, 2])
    x, grad_out = randn(rng, 6, 3), randn(rng, 6, 2)
    got = student.run(mlp_probe, params, activation, x, grad_out)
    tparams = [leaves(p) for p in params]
    x_ = leaves([x])[0]
    out = torch_mlp(tparams, activation, x_)
    out.backward(torch.from_numpy(grad_out))
    assert_close(got["out"], out.detach(), atol=1e-12, rtol=1e-10,
                 what=f"Sequential(Linear(3, 5), {activation}, Linear(5, 4), {activation}, Linear(4, 2)) forward")
    assert_close(got["dx"], x_.grad, atol=1e-12, rtol=1e-10, what="dL/dx through the whole network",
                 hint="backward runs through the layers in reverse order, each taking the previous result")
    assert_close(got["grads"], [[W.grad, b.grad] for W, b in tparams], atol=1e-12, rtol=1e-10,
                 what="[dW, db] of each Linear in the network")


def test_sequential_parameters_are_the_layers_own_arrays(student):
    got = student.run(parameters_probe)
    assert_equal(got[-1], 4, what="len(Sequential(Linear(3, 4), ReLU(), Linear(4, 2)).parameters())",
                 hint="two (value, gradient) pairs per Linear, none for activations")
    assert_equal(got[:-1], [[True, True]] * 4,
                 what="parameters() pairs are (W, dW), (b, db) of each Linear, in order, the very same arrays",
                 hint="return self.W, not self.W.copy(): the optimizer updates them in place")


# ---------------------------------------------------------------- loss

@pytest.mark.parametrize("shape", [(5, 3), (1, 7), (8, 2)])
def test_softmax_cross_entropy_matches_torch(student, rng, shape):
    N, C = shape
    logits = 2 * randn(rng, N, C)
    labels = torch.randint(0, C, (N,), generator=rng).numpy()
    loss, dlogits = student.run(softmax_ce_probe, logits, labels)
    z = leaves([logits])[0]
    want = F.cross_entropy(z, torch.from_numpy(labels))
    want.backward()
    assert_close(loss, want.item(), atol=1e-12, rtol=1e-10, what=f"loss for logits {logits.shape}",
                 hint="the mean over the batch of -log softmax(logits)[n, label_n]")
    assert_close(dlogits, z.grad, atol=1e-12, rtol=1e-10, what=f"dL/dlogits for logits {logits.shape}",
                 hint="(softmax - onehot(labels)) / N: the loss is a mean, so divide by N")


def test_softmax_cross_entropy_is_stable_for_large_logits(student, rng):
    logits = 1e4 * randn(rng, 6, 4)
    logits[0] = [1000.0, 1000.0, 1000.0, 1000.0]
    logits[1] = [-1e5, 0.0, 1e5, 3.0]
    labels = np.array([2, 0, 1, 3, 0, 2])
    loss, dlogits = student.run(softmax_ce_probe, logits, labels)
    z = leaves([logits])[0]
    want = F.cross_entropy(z, torch.from_numpy(labels))
    want.backward()
    assert_close(loss, want.item(), atol=1e-9, rtol=1e-12, what="loss for logits of size up to 1e5",
                 hint="subtract each row's maximum before exp(); exp(1000) is inf")
    assert_close(dlogits, z.grad, atol=1e-12, rtol=1e-10, what="dL/dlogits for logits of size up to 1e5")


# ---------------------------------------------------------------- SGD

@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_matches_torch(student, rng, momentum):
    values = [randn(rng, 3, 2), randn(rng, 4)]
    grads_per_step = [[randn(rng, 3, 2), randn(rng, 4)] for _ in range(4)]
    lr = 0.1
    trajectory, grads_after = student.run(sgd_probe, values, grads_per_step, lr, momentum)
    ps = leaves(values)
    opt = torch.optim.SGD(ps, lr=lr, momentum=momentum)
    want = []
    for grads in grads_per_step:
        for p, g in zip(ps, grads):
            p.grad = torch.from_numpy(g).clone()
        opt.step()
        want.append([p.detach().clone() for p in ps])
    assert_close(trajectory, want, atol=1e-12, rtol=1e-10,
                 what=f"parameters after each of 4 steps, lr={lr}, momentum={momentum}",
                 hint="v = momentum * v + g, then p -= lr * v (v starts at zero); update p in place")
    assert_close(grads_after, [np.zeros((3, 2)), np.zeros(4)], atol=0, rtol=0,
                 what="gradients after SGD.zero_grad()", hint="zero them in place: g[...] = 0")


def test_sgd_trains_a_network_through_its_parameters(student, rng):
    params = random_params(rng, [3, 6, 3])
    x = randn(rng, 10, 3)
    labels = torch.randint(0, 3, (10,), generator=rng).numpy()
    got = student.run(sgd_on_model_probe, params, x, labels, 0.5, 0.5, 3)
    tparams = [leaves(p) for p in params]
    opt = torch.optim.SGD([t for p in tparams for t in p], lr=0.5, momentum=0.5)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(torch_mlp(tparams, "Tanh", torch.from_numpy(x)), torch.from_numpy(labels)).backward()
        opt.step()
    assert_close(got, [[W.detach(), b.detach()] for W, b in tparams], atol=1e-12, rtol=1e-10,
                 what="[W, b] of each Linear after 3 SGD steps on Linear(3, 6), Tanh, Linear(6, 3)",
                 hint="SGD must hold the model's own arrays, and zero_grad must zero them in place")


# ---------------------------------------------------------------- gradient checking

@pytest.mark.parametrize("shape", [(5,), (3, 4)])
def test_numerical_gradient_is_central_and_restores_x(student, rng, shape):
    x = randn(rng, *shape)
    h = 1e-4
    grad, x_after = student.run(numerical_gradient_probe, x.copy(), h)
    x_ = leaves([x])[0]
    flat = x_.reshape(-1)
    (torch.sum(torch.sin(x_) * x_ ** 2) + flat[0] * flat[-1]).backward()
    assert_close(x_after, x, atol=1e-15, rtol=1e-12, what="x after numerical_gradient",
                 hint="put every element back to its old value (keep it in a variable)")
    # Central differences are off by O(h^2) ~ 1e-8 here; one-sided ones by O(h) ~ 1e-4.
    assert_close(grad, x_.grad, atol=1e-6, rtol=1e-6, what=f"numerical_gradient of a function of x {shape}, h={h}",
                 hint="central differences: (f(x + h) - f(x - h)) / (2h), one element at a time")


def test_relative_error_examples(student):
    cases = [((np.array([3.0, 4.0]), np.zeros(2)), 1.0),
             ((np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 2.0], [3.0, 4.0]])), 0.0),
             ((np.array([1.0, 0.0]), np.array([0.0, 1.0])), np.sqrt(2) / 2),
             ((np.array([2.0, 0.0]), np.array([1.0, 0.0])), 1 / 3),
             ((np.zeros(3), np.zeros(3)), 0.0)]
    for (a, b), want in cases:
        got = student.run(relative_error_probe, a, b)
        assert_close(got, float(want), atol=1e-15, rtol=1e-12, what=f"relative_error({a.tolist()}, {b.tolist()})",
                     hint="|a - b| / (|a| + |b|) with Euclidean norms of whole arrays; 0 when both are zero")


def test_gradient_check_passes_a_correct_network(student, rng):
    params = random_params(rng, [4, 5, 3])
    x = randn(rng, 6, 4)
    labels = torch.randint(0, 3, (6,), generator=rng).numpy()
    error, params_after, x_after = student.run(gradient_check_probe, params, x, labels, "none")
    assert error < 1e-6, (f"gradient_check on a correct Tanh network reported {error:.3g}; expected < 1e-6. "
                          f"hint: zero the gradients first, use central differences, compare with relative_error")
    assert_close(params_after, [[W, b] for W, b in params], atol=1e-15, rtol=1e-12,
                 what="the network's [W, b] after gradient_check", hint="numerical_gradient must restore every element")
    assert_close(x_after, x, atol=1e-15, rtol=1e-12, what="x after gradient_check")


@pytest.mark.parametrize("corrupt", ["dx", "last db", "first dW"])
def test_gradient_check_catches_a_wrong_gradient(student, rng, corrupt):
    params = random_params(rng, [4, 5, 3])
    x = randn(rng, 6, 4)
    labels = torch.randint(0, 3, (6,), generator=rng).numpy()
    error, _, _ = student.run(gradient_check_probe, params, x, labels, corrupt)
    assert error > 0.05, (f"gradient_check reported {error:.3g} for a network whose backward gets {corrupt} wrong "
                          f"(relative error 0.2 or more); it must compare the input x and every parameter, "
                          f"and return the largest error")


# ---------------------------------------------------------------- a network that learns

def test_accuracy_matches_torch(student, rng):
    params = random_params(rng, [2, 8, 3])
    X = randn(rng, 50, 2)
    y = torch.randint(0, 3, (50,), generator=rng).numpy()
    got = student.run(accuracy_probe, params, X, y)
    assert_close(got, torch_accuracy(params, X, y), atol=1e-12, rtol=0, what="accuracy of a random network on 50 points",
                 hint="the fraction of rows whose largest logit is at the label")


def test_train_classifier_full_batch_matches_torch(student, rng):
    params = random_params(rng, [2, 8, 3])
    X = randn(rng, 24, 2)
    y = torch.randint(0, 3, (24,), generator=rng).numpy()
    epochs, lr, momentum = 5, 0.3, 0.8
    history, got = student.run(train_full_batch_probe, params, X, y, epochs, lr, momentum)
    tparams = [leaves(p) for p in params]
    opt = torch.optim.SGD([t for p in tparams for t in p], lr=lr, momentum=momentum)
    want_history = []
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(torch_mlp(tparams, "Tanh", torch.from_numpy(X)), torch.from_numpy(y)).backward()
        opt.step()
        logits = torch_mlp(tparams, "Tanh", torch.from_numpy(X))
        want_history.append(float((logits.argmax(dim=1) == torch.from_numpy(y)).double().mean()))
    assert_close(got, [[W.detach(), b.detach()] for W, b in tparams], atol=1e-10, rtol=1e-8,
                 what=f"[W, b] after train_classifier with batch_size = N = 24: {epochs} full-batch steps, "
                      f"lr={lr}, momentum={momentum}",
                 hint="one SGD(model.parameters(), lr, momentum); each step: zero the gradients, "
                      "forward, softmax_cross_entropy, backward, step")
    assert_close(history, want_history, atol=1e-12, rtol=0, what="history: the training accuracy after each epoch")


def test_mlp_learns_two_spirals(student):
    X, y = two_spirals(400, seed=0)
    X_test, y_test = two_spirals(2000, seed=1)
    epochs = 150
    history, params = student.run(train_probe, [2, 32, 32, 2], X, y, 0, epochs, 0.05, 0.9, 32)
    assert_equal(len(history), epochs, what="len(history) from train_classifier(epochs=150)")
    assert_close(history[-1], torch_accuracy(params, X, y), atol=1e-12, rtol=0,
                 what="history[-1] against the training accuracy of the returned weights",
                 hint="history[e] is accuracy(model, X, y) at the end of epoch e")
    held_out = torch_accuracy(params, X_test, y_test)
    # The reference reaches 1.0 from any seed; a linear model reaches about 0.65.
    assert held_out >= 0.95, (f"Linear(2, 32), ReLU, Linear(32, 32), ReLU, Linear(32, 2) trained for {epochs} "
                              f"epochs on two spirals classifies {held_out:.1%} of 2000 new points; "
                              f"expected at least 95%. Check each backward with the tests above first")


def test_linear_model_cannot_separate_the_spirals(student):
    X, y = two_spirals(400, seed=0)
    X_test, y_test = two_spirals(2000, seed=1)
    history, params = student.run(train_probe, [2, 2], X, y, 0, 150, 0.05, 0.9, 32)
    assert_close(history[-1], torch_accuracy(params, X, y), atol=1e-12, rtol=0,
                 what="history[-1] against the training accuracy of the returned linear model",
                 hint="history[e] is accuracy(model, X, y) on all of X at the end of epoch e")
    W, b = (torch.from_numpy(a) for a in params[0])
    loss = float(F.cross_entropy(torch.from_numpy(X) @ W + b, torch.from_numpy(y)))
    # The best a linear model can do, found here by torch's L-BFGS.
    W_, b_ = leaves([np.zeros((2, 2)), np.zeros(2)])
    opt = torch.optim.LBFGS([W_, b_], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = F.cross_entropy(torch.from_numpy(X) @ W_ + b_, torch.from_numpy(y))
        value.backward()
        return value
    opt.step(closure)
    best = closure().item()
    assert loss <= best + 0.02, (f"train_classifier left a linear model at loss {loss:.4f}; the best linear "
                                 f"model has {best:.4f}: training does not converge on a convex problem")
    held_out = torch_accuracy(params, X_test, y_test)
    assert held_out < 0.8, f"a linear model classified {held_out:.1%} of the spiral points; it cannot separate them"

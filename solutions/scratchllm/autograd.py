"""Unit u01: backpropagation by hand.

A neural network is a chain of simple functions. Training it needs the
gradient of a scalar loss L with respect to every parameter, and the chain
rule gives all of them in one sweep backwards through the chain. If a layer
computes y = f(x, p) and we already know dL/dy (the "upstream gradient"),
then

    dL/dp = dL/dy . dy/dp        (what the layer keeps, to update p)
    dL/dx = dL/dy . dy/dx        (what the layer hands to the layer before it)

So every layer here has two methods:

    forward(x)          computes y and remembers what backward will need
    backward(grad_out)  takes dL/dy, adds dL/dp into the parameter gradients,
                        and returns dL/dx

For a Linear layer y = x W + b, with x (N, in), W (in, out), b (out,):

    dL/dW = x^T  dL/dy        (in, out)   summed over the N examples
    dL/db = sum_n dL/dy[n]    (out,)
    dL/dx = dL/dy  W^T        (N, in)

Elementwise activations a = g(z) multiply the upstream gradient by g'(z):

    ReLU     g'(z) = 1 where z > 0, else 0 (also at z = 0, as torch does)
    Tanh     g'(z) = 1 - tanh(z)^2
    Sigmoid  g'(z) = s (1 - s), with s = sigmoid(z)

Softmax followed by cross-entropy has a famously simple gradient: with
p = softmax(logits) and the mean loss L = -(1/N) sum_n log p[n, y_n],

    dL/dlogits = (p - onehot(y)) / N

Conventions used throughout (the tests rely on them):

- Arrays are numpy float64. A batch is the first axis.
- A layer remembers the input of its latest forward call, in its own
  attributes; backward uses that. Two layers never share what they remember.
- Gradients *accumulate*: backward adds to dW and db (+=) until zero_grad()
  sets them back to zero. This is what torch does with .grad.
- parameters() returns (value, gradient) pairs of the layer's own arrays,
  not copies, and every update is made in place (+=, -=, [...] = 0), so an
  optimizer holding the pairs always sees the current numbers.

Read exercises/units/u01_foundations/README.md first. Check your work with
`llmfs check u01` or `pytest exercises/tests -m u01`.
Not allowed here: torch (this unit is numpy only; see course.toml).
"""

from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------- layers

class Linear:
    """y = x W + b.

    Attributes: W (in_features, out_features), b (out_features,), and their
    gradients dW, db of the same shapes.

    Initialisation (He et al., 2015, for ReLU networks): every entry of W is
    drawn independently from N(0, 2 / in_features) with `rng`, a
    numpy.random.Generator; b starts at zero; dW and db start at zero.
    """

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator):
        std = math.sqrt(2.0 / in_features)
        self.W = rng.normal(0.0, std, size=(in_features, out_features))
        self.b = np.zeros(out_features)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def forward(self, x: np.ndarray,  # (N, in)
                ) -> np.ndarray:  # (N, out)
        self.x = x
        return x @ self.W + self.b

    def backward(self, grad_out: np.ndarray,  # (N, out)
                 ) -> np.ndarray:  # (N, in)
        self.dW += self.x.T @ grad_out
        self.db += grad_out.sum(axis=0)
        return grad_out @ self.W.T

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(W, dW), (b, db)]: the layer's own arrays, not copies."""
        return [(self.W, self.dW), (self.b, self.db)]

    def zero_grad(self) -> None:
        """Set dW and db to zero, in place."""
        self.dW[...] = 0.0
        self.db[...] = 0.0


class Activation:
    """An elementwise function: no parameters, so nothing to hand out or zero."""

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return []

    def zero_grad(self) -> None:
        pass


class ReLU(Activation):
    """relu(z) = max(z, 0); its derivative is 1 where z > 0 and 0 elsewhere, z = 0 included."""

    def forward(self, x: np.ndarray) -> np.ndarray:  # any shape -> same shape
        self.x = x
        return np.maximum(x, 0.0)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * (self.x > 0)


class Tanh(Activation):
    """tanh(z); its derivative is 1 - tanh(z)^2."""

    def forward(self, x: np.ndarray) -> np.ndarray:  # any shape -> same shape
        self.out = np.tanh(x)
        return self.out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * (1.0 - self.out ** 2)


class Sigmoid(Activation):
    """sigmoid(z) = 1 / (1 + exp(-z)); its derivative is s (1 - s)."""

    def forward(self, x: np.ndarray) -> np.ndarray:  # any shape -> same shape
        # exp(-|z|) never overflows; the two branches are the same function.
        e = np.exp(-np.abs(x))
        self.out = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return self.out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * self.out * (1.0 - self.out)


class Sequential:
    """Layers applied in order; backward runs through them in reverse.

    Attribute: layers, the list of layers in the order given.
    """

    def __init__(self, *layers):
        self.layers = list(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every layer's (value, gradient) pairs, in layer order."""
        return [pair for layer in self.layers for pair in layer.parameters()]

    def zero_grad(self) -> None:
        for layer in self.layers:
            layer.zero_grad()


# ---------------------------------------------------------------- loss

def softmax_cross_entropy(logits: np.ndarray,  # (N, C)
                          labels: np.ndarray,  # (N,) integers in [0, C)
                          ) -> tuple[float, np.ndarray]:  # (mean loss, dL/dlogits (N, C))
    """Mean cross-entropy of softmax(logits) against the labels, and its gradient.

    log p[n, c] = z[n, c] - m_n - log sum_k exp(z[n, k] - m_n), with m_n = max_k z[n, k],
    so no exp() ever sees a large positive number. dL/dlogits = (p - onehot) / N.
    """
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = -log_probs[rows, labels].mean()
    grad = np.exp(log_probs)
    grad[rows, labels] -= 1.0
    return float(loss), grad / n


# ---------------------------------------------------------------- optimiser

class SGD:
    """Stochastic gradient descent with momentum, as torch.optim.SGD does it:

        v = momentum * v + g        (v starts at zero, one per parameter)
        p = p - lr * v

    With momentum = 0 this is plain p = p - lr * g. `params` is a list of
    (value, gradient) pairs, such as model.parameters(); values are updated
    in place. lr and momentum are attributes: a schedule may change lr
    between steps, and the velocities keep what they hold.
    """

    def __init__(self, params: list[tuple[np.ndarray, np.ndarray]], lr: float, momentum: float = 0.0):
        self.params = list(params)
        self.lr = lr
        self.momentum = momentum
        self.velocities = [np.zeros_like(p) for p, _ in self.params]

    def step(self) -> None:
        for (p, g), v in zip(self.params, self.velocities):
            v *= self.momentum
            v += g
            p -= self.lr * v

    def zero_grad(self) -> None:
        """Set every gradient to zero, in place."""
        for _, g in self.params:
            g[...] = 0.0


# ---------------------------------------------------------------- gradient checking

def numerical_gradient(f, x: np.ndarray, h: float = 1e-5) -> np.ndarray:  # same shape as x
    """df/dx by central differences, one element at a time:

        df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2 h)     error O(h^2)

    f(x) returns a number. x is changed in place while f is evaluated (so f
    may read x, or arrays that share its memory) and every element is put
    back to its exact old value afterwards.
    """
    grad = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        f_plus = f(x)
        x[i] = old - h
        f_minus = f(x)
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2.0 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """|a - b| / (|a| + |b|) with Euclidean norms over the whole array; 0 when both are 0."""
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def gradient_check(model, x: np.ndarray,  # (N, in)
                   labels: np.ndarray,  # (N,)
                   h: float = 1e-5) -> float:
    """Largest relative_error between backprop and numerical_gradient of the loss

        L = softmax_cross_entropy(model.forward(x), labels)[0]

    over every parameter of the model and over the input x. The gradients are
    computed from zero (model.zero_grad() first). Parameters and x hold their
    old values afterwards.
    """
    model.zero_grad()
    loss, dlogits = softmax_cross_entropy(model.forward(x), labels)
    dx = model.backward(dlogits)

    def loss_at(_):
        return softmax_cross_entropy(model.forward(x), labels)[0]

    worst = relative_error(dx, numerical_gradient(loss_at, x, h))
    for p, g in model.parameters():
        worst = max(worst, relative_error(g, numerical_gradient(loss_at, p, h)))
    return worst


# ---------------------------------------------------------------- training

def accuracy(model, X: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows of X whose largest logit is at the label."""
    return float(np.mean(model.forward(X).argmax(axis=1) == y))


def train_classifier(model, X: np.ndarray,  # (N, in) float64
                     y: np.ndarray,  # (N,) integer labels
                     rng: np.random.Generator,
                     epochs: int = 100, lr: float = 0.1, momentum: float = 0.9,
                     batch_size: int = 32) -> list[float]:
    """Train `model` with softmax cross-entropy and SGD(momentum) on minibatches.

    Each epoch visits the examples in a fresh order (rng.permutation) in
    batches of batch_size (the last one may be smaller): zero the
    gradients, forward, loss, backward, step. Returns the history: entry e is
    accuracy(model, X, y) at the end of epoch e.
    """
    opt = SGD(model.parameters(), lr=lr, momentum=momentum)
    history = []
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            batch = order[start:start + batch_size]
            opt.zero_grad()
            _, dlogits = softmax_cross_entropy(model.forward(X[batch]), y[batch])
            model.backward(dlogits)
            opt.step()
        history.append(accuracy(model, X, y))
    return history

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
        # TODO(u01): Create the four float64 arrays:
        #   W  (in_features, out_features), entries drawn from N(0, 2 / in_features)
        #      with rng (rng.normal takes a standard deviation, not a variance)
        #   b  (out_features,) zeros;   dW, db: zeros shaped like W and b
        raise NotImplementedError("u01: Linear.__init__")

    def forward(self, x: np.ndarray,  # (N, in)
                ) -> np.ndarray:  # (N, out)
        # TODO(u01): Remember x (backward needs it) and return x W + b.
        raise NotImplementedError("u01: Linear.forward")

    def backward(self, grad_out: np.ndarray,  # (N, out)
                 ) -> np.ndarray:  # (N, in)
        # TODO(u01): With x the input of the latest forward:
        #   dW += x^T grad_out      (in, out): a sum over the batch
        #   db += grad_out summed over the batch axis
        #   return grad_out W^T     (N, in)
        # Add (+=), do not assign: gradients accumulate until zero_grad().
        raise NotImplementedError("u01: Linear.backward")

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(W, dW), (b, db)]: the layer's own arrays, not copies."""
        # TODO(u01): Return the two (value, gradient) pairs.
        raise NotImplementedError("u01: Linear.parameters")

    def zero_grad(self) -> None:
        """Set dW and db to zero, in place."""
        # TODO(u01): Zero dW and db in place (an optimizer holds these very arrays).
        raise NotImplementedError("u01: Linear.zero_grad")


class Activation:
    """An elementwise function: no parameters, so nothing to hand out or zero."""

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return []

    def zero_grad(self) -> None:
        pass


class ReLU(Activation):
    """relu(z) = max(z, 0); its derivative is 1 where z > 0 and 0 elsewhere, z = 0 included."""

    def forward(self, x: np.ndarray) -> np.ndarray:  # any shape -> same shape
        # TODO(u01): Remember x and return max(x, 0) elementwise.
        raise NotImplementedError("u01: ReLU.forward")

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        # TODO(u01): Pass the gradient where the input was > 0, zero elsewhere
        # (at exactly 0 too).
        raise NotImplementedError("u01: ReLU.backward")


class Tanh(Activation):
    """tanh(z); its derivative is 1 - tanh(z)^2."""

    def forward(self, x: np.ndarray) -> np.ndarray:  # any shape -> same shape
        # TODO(u01): Compute tanh(x), remember it (the derivative needs only
        # the output) and return it.
        raise NotImplementedError("u01: Tanh.forward")

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        # TODO(u01): Multiply grad_out by 1 - tanh(x)^2.
        raise NotImplementedError("u01: Tanh.backward")


class Sigmoid(Activation):
    """sigmoid(z) = 1 / (1 + exp(-z)); its derivative is s (1 - s)."""

    def forward(self, x: np.ndarray) -> np.ndarray:  # any shape -> same shape
        # TODO(u01): Compute s = sigmoid(x) without overflow warnings for large
        # |x| (hint: with e = exp(-|x|), s is 1/(1+e) where x >= 0 and e/(1+e)
        # where x < 0), remember s and return it.
        raise NotImplementedError("u01: Sigmoid.forward")

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        # TODO(u01): Multiply grad_out by s (1 - s).
        raise NotImplementedError("u01: Sigmoid.backward")


class Sequential:
    """Layers applied in order; backward runs through them in reverse.

    Attribute: layers, the list of layers in the order given.
    """

    def __init__(self, *layers):
        self.layers = list(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        # TODO(u01): Feed x through every layer in order.
        raise NotImplementedError("u01: Sequential.forward")

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        # TODO(u01): Feed the gradient through every layer's backward, last
        # layer first, and return dL/d(input of the first layer).
        raise NotImplementedError("u01: Sequential.backward")

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every layer's (value, gradient) pairs, in layer order."""
        # TODO(u01): Concatenate the layers' parameters() lists.
        raise NotImplementedError("u01: Sequential.parameters")

    def zero_grad(self) -> None:
        # TODO(u01): Zero every layer's gradients.
        raise NotImplementedError("u01: Sequential.zero_grad")


# ---------------------------------------------------------------- loss

def softmax_cross_entropy(logits: np.ndarray,  # (N, C)
                          labels: np.ndarray,  # (N,) integers in [0, C)
                          ) -> tuple[float, np.ndarray]:  # (mean loss, dL/dlogits (N, C))
    """Mean cross-entropy of softmax(logits) against the labels, and its gradient.

    log p[n, c] = z[n, c] - m_n - log sum_k exp(z[n, k] - m_n), with m_n = max_k z[n, k],
    so no exp() ever sees a large positive number. dL/dlogits = (p - onehot) / N.
    """
    # TODO(u01):
    #   1. shift each row by its maximum; log_probs = shifted - log(sum(exp(shifted)))
    #   2. loss = minus the mean over rows of log_probs[n, labels[n]]
    #   3. grad = softmax probabilities, minus 1 at each row's label, divided by N
    # Return (loss as a Python float, grad).
    raise NotImplementedError("u01: softmax_cross_entropy")


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
        # TODO(u01): Keep params, lr and momentum, and one zero velocity
        # array per parameter.
        raise NotImplementedError("u01: SGD.__init__")

    def step(self) -> None:
        # TODO(u01): For each (p, g) and its velocity v: v = momentum v + g,
        # then p -= lr v. Both updates in place.
        raise NotImplementedError("u01: SGD.step")

    def zero_grad(self) -> None:
        """Set every gradient to zero, in place."""
        # TODO(u01): Zero every gradient array in place.
        raise NotImplementedError("u01: SGD.zero_grad")


# ---------------------------------------------------------------- gradient checking

def numerical_gradient(f, x: np.ndarray, h: float = 1e-5) -> np.ndarray:  # same shape as x
    """df/dx by central differences, one element at a time:

        df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2 h)     error O(h^2)

    f(x) returns a number. x is changed in place while f is evaluated (so f
    may read x, or arrays that share its memory) and every element is put
    back to its exact old value afterwards.
    """
    # TODO(u01): Start from grad = np.zeros(x.shape). For every index i of x
    # (np.ndindex(x.shape) yields them all):
    #   keep old = x[i]; set x[i] = old + h and evaluate f(x); set x[i] = old - h
    #   and evaluate f(x); put x[i] = old back; grad[i] = (f_plus - f_minus) / (2 h).
    raise NotImplementedError("u01: numerical_gradient")


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """|a - b| / (|a| + |b|) with Euclidean norms over the whole array; 0 when both are 0."""
    # TODO(u01): np.linalg.norm gives |.|; return a Python float.
    raise NotImplementedError("u01: relative_error")


def gradient_check(model, x: np.ndarray,  # (N, in)
                   labels: np.ndarray,  # (N,)
                   h: float = 1e-5) -> float:
    """Largest relative_error between backprop and numerical_gradient of the loss

        L = softmax_cross_entropy(model.forward(x), labels)[0]

    over every parameter of the model and over the input x. The gradients are
    computed from zero (model.zero_grad() first). Parameters and x hold their
    old values afterwards.
    """
    # TODO(u01):
    #   1. zero the model's gradients; forward, loss, backward: this gives every
    #      parameter's gradient and dL/dx.
    #   2. write f(_) that returns the loss of model.forward(x): it reads the
    #      parameters and x themselves, so perturbing them in place changes f.
    #   3. numerical_gradient(f, x, h) and numerical_gradient(f, p, h) for each
    #      (p, g) in model.parameters(); compare with relative_error.
    #   Return the largest error.
    raise NotImplementedError("u01: gradient_check")


# ---------------------------------------------------------------- training

def accuracy(model, X: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows of X whose largest logit is at the label."""
    # TODO(u01): argmax of the logits along the class axis, compared with y.
    raise NotImplementedError("u01: accuracy")


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
    # TODO(u01): Make an SGD over model.parameters(). For each epoch: order =
    # rng.permutation(len(X)); for each batch of indices in that order: zero
    # the gradients, forward X[batch], softmax_cross_entropy against y[batch],
    # backward the gradient, step. Then append accuracy(model, X, y).
    raise NotImplementedError("u01: train_classifier")

"""u01's tests catch the bugs students really make when they backpropagate by hand.

Each mutant is the reference with one realistic bug planted by a text
substitution (see tests/test_mutants.py for the idea). A substitution
replaces every occurrence of its text in the module named.
"""

import pytest

from kit import assert_mutant_caught

DW = "self.dW += self.x.T @ grad_out"
DB = "self.db += grad_out.sum(axis=0)"
INIT = "self.W = rng.normal(0.0, std, size=(in_features, out_features))"
CENTRAL = ("        x[i] = old - h\n        f_minus = f(x)\n        x[i] = old\n"
           "        grad[i] = (f_plus - f_minus) / (2.0 * h)")
NUMGRAD_LOOP = ("    grad = np.zeros(x.shape)\n    for i in np.ndindex(x.shape):\n        old = x[i]\n"
                "        x[i] = old + h\n        f_plus = f(x)\n        x[i] = old - h\n        f_minus = f(x)\n"
                "        x[i] = old\n        grad[i] = (f_plus - f_minus) / (2.0 * h)\n")
STEP = "            v *= self.momentum\n            v += g\n            p -= self.lr * v"

# (description, module, old text, new text[, what the first failure's message must say])
MUTANTS = [
    # Linear
    ("dW transposed", "autograd", DW, "self.dW += (grad_out.T @ self.x).T.T"),
    ("dW from batch sums (summed over the wrong axis first)", "autograd",
     DW, "self.dW += np.outer(self.x.sum(axis=0), grad_out.sum(axis=0))", "x.T @ grad_out"),
    ("dW averaged over the batch", "autograd", DW, "self.dW += self.x.T @ grad_out / len(grad_out)", "a sum over the batch"),
    ("db averaged over the batch", "autograd", DB, "self.db += grad_out.mean(axis=0)", "sums grad_out over the batch axis"),
    ("db from the first example only", "autograd", DB, "self.db += grad_out[0]", "sums grad_out over the batch axis"),
    ("dW overwritten instead of accumulated", "autograd", DW, "self.dW[...] = self.x.T @ grad_out", "does not overwrite"),
    ("db overwritten instead of accumulated", "autograd", DB, "self.db[...] = grad_out.sum(axis=0)", "does not overwrite"),
    ("dx through W instead of W^T", "autograd", "return grad_out @ self.W.T", "return grad_out @ self.W"),
    ("forward forgets the bias", "autograd", "return x @ self.W + self.b", "return x @ self.W"),
    ("cached input kept in a class attribute, shared by every Linear", "autograd",
     "        self.x = x\n        return x @ self.W", "        Linear.x = x\n        return x @ self.W", "never in a class attribute"),
    ("zero_grad rebinds dW instead of zeroing it in place", "autograd",
     "        self.dW[...] = 0.0\n", "        self.dW = np.zeros_like(self.W)\n", "zero them in place"),
    ("parameters() hands out copies", "autograd",
     "return [(self.W, self.dW), (self.b, self.db)]", "return [(self.W.copy(), self.dW), (self.b.copy(), self.db)]", "not self.W.copy()"),
    ("init N(0, 1/in) instead of He's N(0, 2/in)", "autograd",
     "std = math.sqrt(2.0 / in_features)", "std = math.sqrt(1.0 / in_features)", "sqrt(2 / in_features)"),
    ("init scaled by fan-out", "autograd",
     "std = math.sqrt(2.0 / in_features)", "std = math.sqrt(2.0 / out_features)", "sqrt(2 / in_features)"),
    ("init uniform with the right std", "autograd",
     INIT, "self.W = rng.uniform(-std * 3 ** 0.5, std * 3 ** 0.5, size=(in_features, out_features))", "not a uniform one"),
    ("init from numpy's global generator, not rng", "autograd",
     INIT, "self.W = np.random.normal(0.0, std, size=(in_features, out_features))", "the rng you are given"),
    ("init with a random bias", "autograd",
     "self.b = np.zeros(out_features)", "self.b = rng.normal(0.0, 0.1, size=out_features)"),
    # activations
    ("ReLU passes the gradient at exactly 0", "autograd", "grad_out * (self.x > 0)", "grad_out * (self.x >= 0)", "the derivative at 0 is 0"),
    ("ReLU backward multiplies by the output", "autograd",
     "grad_out * (self.x > 0)", "grad_out * np.maximum(self.x, 0.0)"),
    ("Tanh backward 1 - t instead of 1 - t^2", "autograd",
     "grad_out * (1.0 - self.out ** 2)", "grad_out * (1.0 - self.out)", "1 - tanh(x)^2"),
    ("Tanh backward from the derivative of the input, 1 - x^2", "autograd",
     "        self.out = np.tanh(x)\n        return self.out", "        self.out = x\n        return np.tanh(x)"),
    ("Sigmoid backward without the s factor", "autograd",
     "grad_out * self.out * (1.0 - self.out)", "grad_out * (1.0 - self.out)", "s (1 - s)"),
    ("Sigmoid that overflows for large negative inputs", "autograd",
     "self.out = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))", "self.out = 1.0 / (1.0 + np.exp(-x))"),
    # Sequential
    ("Sequential backward in forward order", "autograd", "reversed(self.layers)", "self.layers"),
    ("Sequential.parameters() skips the biases", "autograd",
     "for pair in layer.parameters()]", "for pair in layer.parameters()[:1]]"),
    # softmax cross-entropy
    ("softmax-CE gradient not divided by N", "autograd", "return float(loss), grad / n", "return float(loss), grad", "divide by N"),
    ("softmax-CE loss summed over the batch", "autograd",
     "loss = -log_probs[rows, labels].mean()", "loss = -log_probs[rows, labels].sum()", "the mean over the batch"),
    ("softmax-CE without the max shift (overflows)", "autograd",
     "shifted = logits - logits.max(axis=1, keepdims=True)", "shifted = logits"),
    ("softmax-CE gradient without the one-hot", "autograd", "grad[rows, labels] -= 1.0", "pass"),
    # SGD
    ("momentum: parameters moved by the gradient, the velocity unused", "autograd",
     "p -= self.lr * v", "p -= self.lr * g", "p -= lr * v"),
    ("momentum applied after the gradient is added: v = mu (v + g)", "autograd",
     STEP, "            v += g\n            v *= self.momentum\n            p -= self.lr * v"),
    ("SGD.zero_grad rebinds the loop variable", "autograd", "            g[...] = 0.0\n", "            g = 0.0 * g\n", "zero them in place"),
    # gradient checking
    ("numerical_gradient one-sided", "autograd", CENTRAL,
     "        x[i] = old\n        f_minus = f(x)\n        grad[i] = (f_plus - f_minus) / h", "central differences"),
    ("numerical_gradient does not restore x", "autograd",
     "        x[i] = old\n        grad[i]", "        grad[i]", "put every element back"),
    ("numerical_gradient with f(x+h) and f(x-h) swapped", "autograd",
     "(f_plus - f_minus) / (2.0 * h)", "(f_minus - f_plus) / (2.0 * h)"),
    ("relative_error by the largest element, not the norm", "autograd",
     "np.linalg.norm(a - b) / denom", "np.abs(a - b).max() / denom", "Euclidean norms"),
    ("gradient_check does not zero stale gradients", "autograd",
     "    model.zero_grad()\n    loss, dlogits", "    loss, dlogits", "zero the gradients first"),
    ("gradient_check ignores the input gradient", "autograd",
     "worst = relative_error(dx, numerical_gradient(loss_at, x, h))", "worst = 0.0", "compare the input x"),
    ("gradient_check checks the first parameter only", "autograd",
     "for p, g in model.parameters():", "for p, g in model.parameters()[:1]:"),
    ("gradient_check returns the last error, not the largest", "autograd",
     "worst = max(worst, relative_error(", "worst = (relative_error(", "return the largest"),
    # training
    ("accuracy along the wrong axis", "autograd", "argmax(axis=1) == y", "argmax(axis=0) == y"),
    ("train_classifier never zeroes the gradients", "autograd", "            opt.zero_grad()\n", "", "zero the gradients"),
    ("train_classifier ignores momentum", "autograd",
     "opt = SGD(model.parameters(), lr=lr, momentum=momentum)", "opt = SGD(model.parameters(), lr=lr)"),
    ("train_classifier history from the last batch", "autograd",
     "history.append(accuracy(model, X, y))", "history.append(accuracy(model, X[batch], y[batch]))", "on all of X"),
]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_public_tests_catch_the_mutant(tmp_path, mutant):
    description, module, old, new, *says = mutant
    assert_mutant_caught(tmp_path, "u01", module, description, old, new, says=says[0] if says else None)


# Bugs only the hidden tests are there to catch.
HIDDEN_MUTANTS = [
    ("numerical_gradient perturbs a reshaped copy (no effect on a non-contiguous x)", "autograd",
     NUMGRAD_LOOP, NUMGRAD_LOOP.replace("grad = np.zeros(x.shape)", "grad = np.zeros(x.shape)\n    flat = x.reshape(-1)")
     .replace("for i in np.ndindex(x.shape)", "for i in range(x.size)").replace("x[i]", "flat[i]")
     .replace("grad[i] =", "grad.flat[i] =")),
    ("numerical_gradient ignores the h it is given", "autograd",
     "    grad = np.zeros(x.shape)\n", "    h = 1e-5\n    grad = np.zeros(x.shape)\n"),
    ("lr folded into the velocity (wrong once lr changes)", "autograd",
     STEP, "            v *= self.momentum\n            v += self.lr * g\n            p -= v"),
    ("train_classifier drops the last partial batch", "autograd",
     "range(0, len(X), batch_size)", "range(0, len(X) - batch_size + 1, batch_size)"),
    ("ReLU overwrites its input", "autograd", "return np.maximum(x, 0.0)", "return np.maximum(x, 0.0, out=x)"),
]


@pytest.mark.parametrize("description, module, old, new", HIDDEN_MUTANTS, ids=[m[0] for m in HIDDEN_MUTANTS])
def test_hidden_tests_catch_the_mutant(tmp_path, description, module, old, new):
    assert_mutant_caught(tmp_path, "u01", module, description, old, new, tests="grader/hidden")

# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Unit u01: Backpropagation by hand, in pictures
#
# You write `scratchllm/autograd.py` in numpy: layers with a forward and a backward
# pass, softmax cross-entropy, SGD with momentum, a numerical gradient check and a
# training loop. The reading (`exercises/units/u01_foundations/README.md`) has the
# math; this notebook runs your checks, compares your gradients with numerical ones,
# and watches your network learn to separate two spirals.
#
# **In Colab**, the first cell fetches the course into `/content/llm-from-scratch`.
# Open `exercises/scratchllm/autograd.py` there in the file browser (left), write a
# TODO, save, and run the cells again. Colab forgets its files when the runtime
# stops: download your module when you are done.

# %%
# In Colab: fetch the course and install it (Colab's own torch, CPU or GPU, is kept).
# On your own machine, with the kit installed, this only opens the unit.
import os
import sys

if "google.colab" in sys.modules:
    if not os.path.isdir("/content/llm-from-scratch"):
        print("Fetching the course ...")
        # !git clone --quiet --depth 1 https://github.com/llm-from-scratch/llm-from-scratch /content/llm-from-scratch
        # %pip install --quiet -e /content/llm-from-scratch
    sys.path.insert(0, "/content/llm-from-scratch")
    os.chdir("/content/llm-from-scratch/exercises/units/u01_foundations")

from grader.notebook import open_unit

unit = open_unit("u01")

# %% [markdown]
# ## Check your code
#
# This is `llmfs check u01`: the unit's public tests against your module. Run it
# after every change; the pictures below need the functions it tests.

# %%
unit.check()

# %%
import matplotlib.pyplot as plt
import numpy as np

autograd = unit.module("autograd")

# %% [markdown]
# ## Your gradients against numerical ones
#
# A small network, `Linear(2, 5) → Tanh → Linear(5, 3)`, four points with labels.
# Your `backward` gives every gradient in one sweep; your `numerical_gradient` gets
# each one by nudging a single number by ±h and watching the loss (section 6 of the
# reading). The table lists, for each array, one entry of each and the relative error
# over the whole array. A correct backward shows errors around 1e-8 or smaller;
# an error near 1 means a wrong formula. (Tanh, not ReLU, so that no input sits on
# ReLU's kink, where the numerical gradient is unreliable.)

# %%
with unit.todo():
    rng = np.random.default_rng(0)
    net = autograd.Sequential(autograd.Linear(2, 5, rng), autograd.Tanh(), autograd.Linear(5, 3, rng))
    x = rng.normal(size=(4, 2))
    labels = np.array([0, 2, 1, 2])

    def loss_now(_):
        return autograd.softmax_cross_entropy(net.forward(x), labels)[0]

    net.zero_grad()
    loss, dlogits = autograd.softmax_cross_entropy(net.forward(x), labels)
    dx = net.backward(dlogits)
    rows = [("input x", x.shape, dx, autograd.numerical_gradient(loss_now, x))]
    names = ["layer 0: W", "layer 0: b", "layer 2: W", "layer 2: b"]
    for name, (value, grad) in zip(names, net.parameters()):
        rows.append((name, value.shape, grad.copy(), autograd.numerical_gradient(loss_now, value)))

    print(f"loss = {loss:.6f}\n")
    print(f"{'gradient of L by':<17}{'shape':<9}{'backprop [0]':>15}{'numerical [0]':>15}{'relative error':>16}")
    for name, shape, analytic, numeric in rows:
        first = (0,) * len(shape)
        err = autograd.relative_error(analytic, numeric)
        print(f"{name:<17}{str(shape):<9}{analytic[first]:>15.8f}{numeric[first]:>15.8f}{err:>16.1e}")
    print(f"\ngradient_check (the worst of these): {autograd.gradient_check(net, x, labels):.1e}")

# %% [markdown]
# ## Two spirals
#
# The data set: two spirals winding around each other, 400 points, labels 0 and 1.
# No straight line separates them (section 7 of the reading).

# %%
def two_spirals(n, seed, turns=1.5, noise=0.02):
    """n points on two interleaved spirals in the plane, labels 0 and 1 (seeded).

    A point at distance r from the centre sits at the angle 2π·turns·r on its
    spiral; the second spiral is the first turned by half a circle.
    """
    g = np.random.default_rng(seed)
    radius = np.sqrt(g.uniform(0.02, 1.0, n))  # sqrt: points spread evenly over the area
    label = g.integers(0, 2, n)
    theta = 2 * np.pi * turns * radius + np.pi * label
    points = radius[:, None] * np.column_stack([np.cos(theta), np.sin(theta)])
    return points + g.normal(scale=noise, size=(n, 2)), label


X, y = two_spirals(400, seed=0)
X_test, y_test = two_spirals(2000, seed=1)
colors = np.array(["tab:blue", "tab:orange"])
plt.figure(figsize=(4.5, 4.5))
plt.scatter(X[:, 0], X[:, 1], c=colors[y], s=10)
plt.gca().set_aspect("equal")
plt.title("two spirals: class 0 (blue), class 1 (orange)")
plt.xlabel("x₁")
plt.ylabel("x₂")
plt.show()

# %% [markdown]
# ## Training, epoch by epoch
#
# `Linear(2, 32) → ReLU → Linear(32, 32) → ReLU → Linear(32, 2)`, trained by your
# `train_classifier` (minibatches of 32, SGD with momentum 0.9). Each call below
# trains one epoch and then the loss on the whole training set is measured with
# your `softmax_cross_entropy`. (Each call starts a fresh `SGD`, so the momentum
# restarts at every epoch: a small difference from one long call.) Alongside, a
# linear model `Linear(2, 2)` gets the same training.

# %%
epochs = 150 if unit.quick else 400
snapshot_at = [1, 10, 40, epochs]
snapshots = {}  # epoch -> the MLP's parameter values then

with unit.todo():
    rng = np.random.default_rng(0)
    mlp = autograd.Sequential(autograd.Linear(2, 32, rng), autograd.ReLU(), autograd.Linear(32, 32, rng),
                              autograd.ReLU(), autograd.Linear(32, 2, rng))
    linear = autograd.Sequential(autograd.Linear(2, 2, rng))
    curves = {"MLP": ([], []), "linear": ([], [])}
    for epoch in range(1, epochs + 1):
        for name, model in (("MLP", mlp), ("linear", linear)):
            history = autograd.train_classifier(model, X, y, rng, epochs=1, lr=0.05, momentum=0.9, batch_size=32)
            losses, accuracies = curves[name]
            losses.append(autograd.softmax_cross_entropy(model.forward(X), y)[0])
            accuracies.append(history[-1])
        if epoch in snapshot_at:
            snapshots[epoch] = [value.copy() for value, _ in mlp.parameters()]

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4))
    for name, (losses, accuracies) in curves.items():
        ax_loss.plot(range(1, epochs + 1), losses, label=name)
        ax_acc.plot(range(1, epochs + 1), accuracies, label=name)
    ax_loss.set_yscale("log")
    ax_loss.set_title("training loss (softmax cross-entropy)")
    ax_loss.set_ylabel("mean loss over the 400 points (log scale)")
    ax_acc.set_title("training accuracy")
    ax_acc.set_ylabel("fraction of the 400 points right")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.legend()
    plt.show()
    for name, model in (("MLP", mlp), ("linear", linear)):
        print(f"{name}: accuracy on 2000 new points {autograd.accuracy(model, X_test, y_test):.1%}")

# %% [markdown]
# ## The decision boundary
#
# Colour shows the network's preference at every point of the plane: the logit of
# class 1 minus the logit of class 0 (red where it says 1, blue where it says 0,
# pale where it is unsure); the black line is where the two logits are equal. The MLP's boundary bends along
# the spiral as training goes on; the linear model's is a straight line, whatever
# the training.

# %%
def draw_boundary(ax, model, title, n=150):
    """Colour the plane by logit[1] - logit[0] of `model`, with the training points on top."""
    u = np.linspace(-1.2, 1.2, n)
    grid = np.stack(np.meshgrid(u, u), axis=-1).reshape(-1, 2)  # (n * n, 2)
    logits = model.forward(grid)
    margin = (logits[:, 1] - logits[:, 0]).reshape(n, n)
    ax.contourf(u, u, np.clip(margin, -6, 6), levels=np.linspace(-6, 6, 13), cmap="RdBu_r", alpha=0.6)
    ax.contour(u, u, margin, levels=[0.0], colors="black", linewidths=1.5)
    ax.scatter(X[:, 0], X[:, 1], c=colors[y], s=6)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.set_xlabel("x₁")


with unit.todo():
    if len(snapshots) < len(snapshot_at):
        print("Not yet: the training above has to run first (it needs the functions it names).")
    else:
        final = [value.copy() for value, _ in mlp.parameters()]
        fig, axes = plt.subplots(1, len(snapshot_at) + 1, figsize=(4 * (len(snapshot_at) + 1), 4.4),
                                 layout="constrained")
        fig.suptitle("colour: logit of class 1 minus logit of class 0 (cut off at ±6); "
                     "black line: the decision boundary, where they are equal")
        axes[0].set_ylabel("x₂")
        for ax, epoch in zip(axes, snapshot_at):
            for (value, _), saved in zip(mlp.parameters(), snapshots[epoch]):
                value[...] = saved
            draw_boundary(ax, mlp, f"MLP after {epoch} epoch{'s' if epoch > 1 else ''}")
        for (value, _), saved in zip(mlp.parameters(), final):
            value[...] = saved
        draw_boundary(axes[-1], linear, f"linear model after {epochs} epochs")
        plt.show()

# %% [markdown]
# ## Next
#
# From unit u02 on, torch's autograd computes every gradient you wrote by hand here.
# Unit u02 turns text into the integers a language model reads: a byte-level BPE
# tokenizer.
